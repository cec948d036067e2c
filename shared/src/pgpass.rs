//! Handing a password to a local libpq program (`psql`, `pg_dump`) so that it is in
//! neither the program's arguments nor its environment (`PGPASSWORD` shows in
//! `/proc/<pid>/environ`, and PostgreSQL's documentation advises against it), nor on disk
//! (a password file outlives a killed run).
//!
//! On Linux the password file is an anonymous memory file (`memfd`, mode 0600) that the
//! child inherits as an open descriptor; `PGPASSFILE=/proc/self/fd/N` names it from the
//! child's side. It vanishes with the last process holding it. Elsewhere the password
//! goes into the child's environment (`PGPASSWORD`), as before.

use std::ffi::OsString;

/// Errors preparing the password for a child.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the password file for {program}: {source}")]
pub struct PassFileError {
    /// The program it was for.
    pub program: String,
    /// The system's error.
    #[source]
    pub source: std::io::Error,
}

/// One `.pgpass` line matching every connection: `*:*:*:*:password`, with `\` and `:`
/// escaped as libpq expects.
pub fn pgpass_line(password: &str) -> String {
    let mut line = String::from("*:*:*:*:");
    for c in password.chars() {
        if c == '\\' || c == ':' {
            line.push('\\');
        }
        line.push(c);
    }
    line.push('\n');
    line
}

/// The password for children started while this value lives; keep it until they end.
#[derive(Debug)]
pub struct PassFile {
    #[cfg(target_os = "linux")]
    file: std::fs::File,
    #[cfg(not(target_os = "linux"))]
    password: String,
}

impl PassFile {
    /// Prepares `password` for `program` (named in the error).
    pub fn new(password: &str, program: &str) -> Result<Self, PassFileError> {
        Self::create(password).map_err(|source| PassFileError {
            program: program.to_owned(),
            source,
        })
    }

    #[cfg(target_os = "linux")]
    fn create(password: &str) -> std::io::Result<Self> {
        use rustix::fs::{MemfdFlags, Mode, fchmod, memfd_create};
        use std::io::Write as _;
        // No MFD_CLOEXEC: the child must inherit the descriptor.
        let fd = memfd_create("kubectl-astro-pgpass", MemfdFlags::empty())?;
        // libpq ignores a password file that group or others may read.
        fchmod(&fd, Mode::RUSR | Mode::WUSR)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(pgpass_line(password).as_bytes())?;
        Ok(PassFile { file })
    }

    #[cfg(not(target_os = "linux"))]
    fn create(password: &str) -> std::io::Result<Self> {
        Ok(PassFile {
            password: password.to_owned(),
        })
    }

    /// The variables to give the child (`PGPASSFILE`, or `PGPASSWORD` where there is no
    /// memfd); the child must not get the other one from elsewhere.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            vec![(
                "PGPASSFILE",
                format!("/proc/self/fd/{}", self.file.as_raw_fd()).into(),
            )]
        }
        #[cfg(not(target_os = "linux"))]
        {
            vec![("PGPASSWORD", self.password.clone().into())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_line_escapes_colons_and_backslashes() {
        assert_eq!(pgpass_line("Sup3r!Secret"), "*:*:*:*:Sup3r!Secret\n");
        assert_eq!(pgpass_line(r"a:b\c"), "*:*:*:*:a\\:b\\\\c\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_reads_the_password_through_the_inherited_descriptor() {
        let pass = PassFile::new("qN3b@l:a/5%x#y?z", "cat").unwrap();
        let env = pass.env();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].0, "PGPASSFILE");
        let path = env[0].1.clone();
        let out = std::process::Command::new("sh")
            .args(["-c", "stat -L -c %a \"$PGPASSFILE\"; cat \"$PGPASSFILE\""])
            .envs(env)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "600\n*:*:*:*:qN3b@l\\:a/5%x#y?z\n",
            "{path:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(pass);
    }
}
