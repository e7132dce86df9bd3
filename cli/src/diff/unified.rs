//! A unified diff of two texts, line by line, as `diff -u` prints it: `---`/`+++` headers,
//! `@@ -a,b +c,d @@` hunks with three lines of context.
//!
//! What it promises: the lines kept are a longest common subsequence of the two texts, so
//! nothing unchanged is shown as removed and added again. Specs are small; texts whose
//! comparison is too large are shown as all removed and all added (see
//! [`theseus_dashboard::diff`]).

use theseus_dashboard::diff::{LineChange, line_diff};

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The unified diff of `before` and `after` under the header names given, or `None` when the
/// texts are equal. The lines kept are the dashboard's line diff's (the same comparison the
/// deployment page shows between two revisions).
pub fn unified(before_name: &str, before: &str, after_name: &str, after: &str) -> Option<String> {
    if before == after {
        return None;
    }
    let edits = line_diff(before, after);
    let mut out = format!("--- {before_name}\n+++ {after_name}\n");
    // Positions (line numbers from 1) in each text where each edit sits.
    let mut positions = Vec::with_capacity(edits.len());
    let (mut old, mut new) = (1, 1);
    for edit in &edits {
        positions.push((old, new));
        match edit.change {
            LineChange::Kept => {
                old += 1;
                new += 1;
            }
            LineChange::Removed => old += 1,
            LineChange::Added => new += 1,
        }
    }
    let changed: Vec<usize> = (0..edits.len())
        .filter(|&i| edits[i].change != LineChange::Kept)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        // A hunk spans changes closer than twice the context to each other.
        let start = changed[i].saturating_sub(CONTEXT);
        let mut last = changed[i];
        while i + 1 < changed.len() && changed[i + 1] - last <= 2 * CONTEXT {
            i += 1;
            last = changed[i];
        }
        let end = (last + CONTEXT + 1).min(edits.len());
        let hunk = &edits[start..end];
        let old_count = hunk
            .iter()
            .filter(|e| e.change != LineChange::Added)
            .count();
        let new_count = hunk
            .iter()
            .filter(|e| e.change != LineChange::Removed)
            .count();
        let (old_start, new_start) = positions[start];
        // `diff -u` numbers an empty side by the line before it.
        let old_start = if old_count == 0 {
            old_start - 1
        } else {
            old_start
        };
        let new_start = if new_count == 0 {
            new_start - 1
        } else {
            new_start
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_start, old_count),
            range(new_start, new_count)
        ));
        for edit in hunk {
            out.push(match edit.change {
                LineChange::Kept => ' ',
                LineChange::Removed => '-',
                LineChange::Added => '+',
            });
            out.push_str(&edit.text);
            out.push('\n');
        }
        i += 1;
    }
    Some(out)
}

fn range(start: usize, count: usize) -> String {
    if count == 1 {
        start.to_string()
    } else {
        format!("{start},{count}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(count: usize) -> String {
        (1..=count).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a", "x\ny\n", "b", "x\ny\n"), None);
    }

    #[test]
    fn a_changed_line_shows_with_three_lines_of_context() {
        let before = numbered(10);
        let after = before.replace("line 5\n", "line five\n");
        assert_eq!(
            unified("old", &before, "new", &after).unwrap(),
            "--- old\n+++ new\n@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n-line 5\n+line five\n \
             line 6\n line 7\n line 8\n"
        );
    }

    #[test]
    fn distant_changes_make_separate_hunks_and_near_ones_share_one() {
        let before = numbered(30);
        let far = before
            .replace("line 2\n", "line two\n")
            .replace("line 25\n", "line twenty-five\n");
        let text = unified("a", &before, "b", &far).unwrap();
        assert_eq!(text.matches("@@ -").count(), 2, "{text}");
        let near = before
            .replace("line 10\n", "line ten\n")
            .replace("line 15\n", "line fifteen\n");
        let text = unified("a", &before, "b", &near).unwrap();
        assert_eq!(text.matches("@@ -").count(), 1, "{text}");
    }

    #[test]
    fn a_text_from_nothing_is_all_added() {
        assert_eq!(
            unified("/dev/null", "", "new", "a\nb\n").unwrap(),
            "--- /dev/null\n+++ new\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
    }

    #[test]
    fn unchanged_lines_between_insertions_are_kept() {
        let text = unified("a", "x\ny\nz\n", "b", "x\nnew\ny\nz\nmore\n").unwrap();
        assert_eq!(
            text,
            "--- a\n+++ b\n@@ -1,3 +1,5 @@\n x\n+new\n y\n z\n+more\n"
        );
    }
}
