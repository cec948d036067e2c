//! A small unified diff (`diff -u` shape, 3 lines of context) for `--dry-run`.
//! Inputs are short (a secret value, a command element), so a plain LCS table is enough.

use std::fmt::Write;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

const CONTEXT: usize = 3;

/// A unified diff of `old` → `new` under the given labels; empty when they are equal.
pub fn unified_diff(old_label: &str, new_label: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The edit script: (op, index in a, index in b).
    let mut script = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            script.push((Op::Same, i, j));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            script.push((Op::Del, i, j));
            i += 1;
        } else {
            script.push((Op::Add, i, j));
            j += 1;
        }
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    let changed: Vec<usize> = (0..script.len())
        .filter(|&k| script[k].0 != Op::Same)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(script.len());
        let hunk = &script[start..end];
        let old_count = hunk.iter().filter(|s| s.0 != Op::Add).count();
        let new_count = hunk.iter().filter(|s| s.0 != Op::Del).count();
        let (_, a0, b0) = hunk[0];
        let from = |first: usize, count: usize| if count == 0 { first } else { first + 1 };
        let _ = writeln!(
            out,
            "@@ -{},{old_count} +{},{new_count} @@",
            from(a0, old_count),
            from(b0, new_count)
        );
        for &(op, ai, bj) in hunk {
            let (sign, line) = match op {
                Op::Same => (' ', a[ai]),
                Op::Del => ('-', a[ai]),
                Op::Add => ('+', b[bj]),
            };
            out.push(sign);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_change() {
        assert_eq!(
            unified_diff("a/x", "b/x", "postgres://h1:5432", "postgres://h2:5433"),
            "--- a/x\n+++ b/x\n@@ -1,1 +1,1 @@\n-postgres://h1:5432\n\\ No newline at end of file\n+postgres://h2:5433\n\\ No newline at end of file\n"
        );
        assert_eq!(unified_diff("a", "b", "same\n", "same\n"), "");
    }

    #[test]
    fn context_is_limited() {
        let old: String = (1..=20).map(|i| format!("l{i}\n")).collect();
        let new = old.replace("l10\n", "L10\n");
        let d = unified_diff("a", "b", &old, &new);
        assert_eq!(
            d,
            "--- a\n+++ b\n@@ -7,7 +7,7 @@\n l7\n l8\n l9\n-l10\n+L10\n l11\n l12\n l13\n"
        );
    }
}
