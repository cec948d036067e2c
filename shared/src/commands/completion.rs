//! Shell completions: static scripts for bash/zsh/fish, and the dynamic
//! `kubectl_complete-astro` protocol kubectl (1.26+) uses for plugin arguments.

use std::time::Duration;

use clap::Command;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use crate::commands::cli::GlobalArgs;

/// cobra's `ShellCompDirectiveNoFileComp`: do not fall back to file names.
const NO_FILE_COMPLETION: u8 = 4;

/// The whole `kubectl astro` command tree, built from each binary's clap definition.
pub fn command_tree() -> Command {
    let mut root = Command::new("kubectl-astro")
        .bin_name("kubectl-astro")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Astronomer Software disaster recovery, step by step from the runbook");
    for command in crate::commands::dispatch::COMMANDS {
        let sub = match command.name {
            "completion" => Command::new("completion").arg(
                clap::Arg::new("shell")
                    .value_parser(["bash", "zsh", "fish"])
                    .required(true),
            ),
            name => subcommand_definition(name).unwrap_or_else(|| Command::new(name)),
        };
        root = root.subcommand(sub.name(command.name).about(command.about));
    }
    root
}

/// The clap definition of an external command, where the library has one.
fn subcommand_definition(name: &str) -> Option<Command> {
    use clap::CommandFactory;
    match name {
        "backup" => Some(crate::commands::backup::Cli::command()),
        "restore" => Some(crate::commands::restore::Cli::command()),
        "dbconn" => Some(crate::commands::dbconn::Cli::command()),
        "status" => Some(crate::commands::status::Cli::command()),
        _ => None,
    }
}

/// Writes the completion script for `shell` (bash, zsh or fish) to stdout.
pub fn print_script(shell: clap_complete::Shell) {
    let mut tree = command_tree();
    clap_complete::generate(shell, &mut tree, "kubectl-astro", &mut std::io::stdout());
}

/// What kind of value the word being completed is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completing {
    /// Subcommand or flag names of the command at `path`.
    Static(Vec<String>),
    /// Deployment release names from the cluster.
    Releases,
    /// Velero backup names from the cluster.
    Backups,
    /// Velero schedule names from the cluster.
    Schedules,
    /// Nothing sensible to offer.
    Nothing,
}

/// Decides what to complete for `words` (everything after `kubectl astro`, the last one
/// being the partial word), from the command tree alone.
pub fn plan(tree: &Command, words: &[String]) -> Completing {
    let (partial, done) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut command = tree;
    let mut path: Vec<&str> = Vec::new();
    let mut positionals = 0usize;
    let mut previous_flag: Option<&clap::Arg> = None;
    for word in done {
        if let Some(arg) = previous_flag.take() {
            let _ = arg;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let arg = command.get_arguments().find(|a| a.get_long() == Some(name));
            if let Some(arg) = arg
                && !long.contains('=')
                && arg.get_action().takes_values()
            {
                previous_flag = Some(arg);
            }
            continue;
        }
        if word.starts_with('-') {
            continue;
        }
        match command.find_subcommand(word) {
            Some(sub) => {
                command = sub;
                path.push(word);
                positionals = 0;
            }
            None => positionals += 1,
        }
    }
    if let Some(arg) = previous_flag {
        return value_of(arg.get_long().unwrap_or_default());
    }
    if partial.starts_with('-') {
        let flags = command
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .filter(|f| f.starts_with(partial))
            .collect();
        return Completing::Static(flags);
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .filter(|n| n.starts_with(partial) && n != "help")
        .collect();
    if !subcommands.is_empty() {
        return Completing::Static(subcommands);
    }
    let wants_release = command
        .get_positionals()
        .nth(positionals)
        .and_then(|a| a.get_value_names())
        .is_some_and(|names| names.iter().any(|n| n.as_str() == "RELEASE"));
    if wants_release {
        Completing::Releases
    } else {
        Completing::Nothing
    }
}

fn value_of(flag: &str) -> Completing {
    match flag {
        "release" => Completing::Releases,
        "from-backup" => Completing::Backups,
        "from-schedule" => Completing::Schedules,
        _ => Completing::Nothing,
    }
}

/// Runs the `kubectl_complete-astro` protocol: prints candidates and the directive line.
pub async fn complete(words: &[String]) {
    let tree = command_tree();
    let partial = words.last().map(String::as_str).unwrap_or("");
    let candidates = match plan(&tree, words) {
        Completing::Static(found) => found,
        dynamic => {
            // A slow or unreachable cluster must not hang the user's shell.
            tokio::time::timeout(Duration::from_secs(3), cluster_candidates(dynamic, words))
                .await
                .unwrap_or_default()
        }
    };
    let mut out = String::new();
    for c in candidates.iter().filter(|c| c.starts_with(partial)) {
        out.push_str(c);
        out.push('\n');
    }
    out.push_str(&format!(":{NO_FILE_COMPLETION}\n"));
    let _ = crate::output::print_stdout(&out);
}

async fn cluster_candidates(what: Completing, words: &[String]) -> Vec<String> {
    let global = global_flags_from(words);
    let Ok(client) = crate::commands::cli::client_from(&global).await else {
        return Vec::new();
    };
    let names = |list: Vec<kube::core::DynamicObject>| -> Vec<String> {
        list.into_iter().filter_map(|o| o.metadata.name).collect()
    };
    match what {
        Completing::Releases => {
            let namespaces: Api<Namespace> = Api::all(client);
            let Ok(list) = namespaces
                .list(&ListParams::default().labels("platform-release"))
                .await
            else {
                return Vec::new();
            };
            let prefix = format!("{}-", global.platform_namespace);
            list.items
                .into_iter()
                .filter_map(|ns| ns.metadata.name)
                .filter_map(|n| n.strip_prefix(&prefix).map(str::to_owned))
                .collect()
        }
        Completing::Backups | Completing::Schedules => {
            let kind = if what == Completing::Backups {
                "Backup"
            } else {
                "Schedule"
            };
            let resource = kube::discovery::ApiResource {
                group: "velero.io".into(),
                version: "v1".into(),
                api_version: "velero.io/v1".into(),
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            };
            let api: Api<kube::core::DynamicObject> =
                Api::namespaced_with(client, &global.velero_namespace, &resource);
            api.list(&ListParams::default().limit(500))
                .await
                .map(|l| names(l.items))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Picks the global flags (`--kubeconfig`, `--context`, namespaces) out of the typed words.
fn global_flags_from(words: &[String]) -> GlobalArgs {
    let mut global = GlobalArgs {
        platform_namespace: crate::commands::cli::DEFAULT_PLATFORM_NAMESPACE.into(),
        velero_namespace: std::env::var("VELERO_NAMESPACE")
            .unwrap_or_else(|_| crate::commands::cli::DEFAULT_VELERO_NAMESPACE.into()),
        ..GlobalArgs::default()
    };
    let mut iter = words.iter().peekable();
    while let Some(word) = iter.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (word.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| iter.next().cloned());
        match flag {
            "--kubeconfig" => global.kubeconfig = value().map(Into::into),
            "--context" => global.context = value(),
            "--platform-namespace" => global.platform_namespace = value().unwrap_or_default(),
            "--velero-namespace" => global.velero_namespace = value().unwrap_or_default(),
            _ => {}
        }
    }
    global
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn completes_top_level_commands() {
        let tree = command_tree();
        assert_eq!(
            plan(&tree, &words(&["re"])),
            Completing::Static(vec!["restore".into()])
        );
        let Completing::Static(all) = plan(&tree, &words(&[""])) else {
            panic!()
        };
        assert!(all.contains(&"dbconn".to_owned()) && all.contains(&"backup".to_owned()));
    }

    #[test]
    fn completes_nested_subcommands_flags_and_dynamic_values() {
        let tree = command_tree();
        let got = plan(&tree, &words(&["restore", ""]));
        let Completing::Static(subs) = got else {
            panic!("restore subcommands: {got:?}")
        };
        assert!(subs.contains(&"undelete".to_owned()), "{subs:?}");
        let Completing::Static(flags) = plan(&tree, &words(&["restore", "--from-b"])) else {
            panic!("restore flags")
        };
        assert_eq!(flags, vec!["--from-backup".to_owned()]);
        assert_eq!(
            plan(&tree, &words(&["restore", "--from-backup", ""])),
            Completing::Backups
        );
        assert_eq!(
            plan(&tree, &words(&["restore", "undelete", "cel"])),
            Completing::Releases
        );
        assert_eq!(
            plan(&tree, &words(&["dbconn", "--release", ""])),
            Completing::Releases
        );
    }

    #[test]
    fn picks_global_flags_from_words() {
        let g = global_flags_from(&words(&[
            "restore",
            "--context",
            "prod",
            "--kubeconfig=/k",
            "x",
        ]));
        assert_eq!(g.context.as_deref(), Some("prod"));
        assert_eq!(g.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
    }
}
