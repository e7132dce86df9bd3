//! A line diff of two texts, for comparing two revisions of a spec on the deployment page.
//!
//! What it promises: the lines kept, removed and added, in order, such that the kept and
//! removed lines are the old text and the kept and added lines the new one. Lines common to
//! both ends are found first; between them the longest common subsequence is kept, so the
//! diff is minimal for texts the size of a spec. Past [`MAX_CELLS`] of comparison table (two
//! texts of thousands of changed lines each) the changed middle is shown as removed, then
//! added: still correct, no longer minimal, and bounded in time and memory.
//!
//! It compares text only: the caller masks secrets before (see [`crate::mask`]).

use serde::Serialize;

/// The most cells of the comparison table computed for the changed middle of two texts.
pub const MAX_CELLS: usize = 4_000_000;

/// What happened to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineChange {
    /// In both texts.
    Kept,
    /// Only in the old text.
    Removed,
    /// Only in the new text.
    Added,
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// Whether it was kept, removed or added.
    pub change: LineChange,
    /// The line, without its end.
    pub text: String,
}

impl DiffLine {
    fn new(change: LineChange, text: &str) -> DiffLine {
        DiffLine {
            change,
            text: text.to_owned(),
        }
    }
}

/// The lines of `old` and `new`, each marked kept, removed or added; see the module
/// documentation.
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old
        .iter()
        .zip(&new)
        .take_while(|(old, new)| old == new)
        .count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(old, new)| old == new)
        .count();
    let (old_middle, new_middle) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let mut lines: Vec<DiffLine> = old[..prefix]
        .iter()
        .map(|line| DiffLine::new(LineChange::Kept, line))
        .collect();
    lines.extend(middle(old_middle, new_middle));
    lines.extend(
        old[old.len() - suffix..]
            .iter()
            .map(|line| DiffLine::new(LineChange::Kept, line)),
    );
    lines
}

/// The diff of two texts that differ in their first and last lines.
fn middle(old: &[&str], new: &[&str]) -> Vec<DiffLine> {
    let removed = || {
        old.iter()
            .map(|line| DiffLine::new(LineChange::Removed, line))
    };
    let added = || {
        new.iter()
            .map(|line| DiffLine::new(LineChange::Added, line))
    };
    if old.is_empty() || new.is_empty() || (old.len() + 1) * (new.len() + 1) > MAX_CELLS {
        return removed().chain(added()).collect();
    }
    // common[i][j]: the length of the longest common subsequence of old[i..] and new[j..].
    let width = new.len() + 1;
    let mut common = vec![0u32; (old.len() + 1) * width];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i * width + j] = if old[i] == new[j] {
                common[(i + 1) * width + j + 1] + 1
            } else {
                common[(i + 1) * width + j].max(common[i * width + j + 1])
            };
        }
    }
    let mut lines = Vec::with_capacity(old.len() + new.len());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        if old[i] == new[j] {
            lines.push(DiffLine::new(LineChange::Kept, old[i]));
            i += 1;
            j += 1;
        } else if common[(i + 1) * width + j] >= common[i * width + j + 1] {
            lines.push(DiffLine::new(LineChange::Removed, old[i]));
            i += 1;
        } else {
            lines.push(DiffLine::new(LineChange::Added, new[j]));
            j += 1;
        }
    }
    lines.extend(
        old[i..]
            .iter()
            .map(|line| DiffLine::new(LineChange::Removed, line)),
    );
    lines.extend(
        new[j..]
            .iter()
            .map(|line| DiffLine::new(LineChange::Added, line)),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(lines: &[DiffLine]) -> Vec<String> {
        lines
            .iter()
            .map(|line| {
                let mark = match line.change {
                    LineChange::Kept => ' ',
                    LineChange::Removed => '-',
                    LineChange::Added => '+',
                };
                format!("{mark}{}", line.text)
            })
            .collect()
    }

    /// The old and new texts, rebuilt from a diff.
    fn sides(lines: &[DiffLine]) -> (String, String) {
        let side = |skip: LineChange| {
            lines
                .iter()
                .filter(|line| line.change != skip)
                .map(|line| format!("{}\n", line.text))
                .collect::<String>()
        };
        (side(LineChange::Added), side(LineChange::Removed))
    }

    #[test]
    fn a_changed_line_is_removed_then_added_between_kept_lines() {
        let old = "{\n  \"cmd\": \"run\",\n  \"instances\": 1\n}\n";
        let new = "{\n  \"cmd\": \"run\",\n  \"instances\": 3\n}\n";
        assert_eq!(
            marked(&line_diff(old, new)),
            [
                " {",
                "   \"cmd\": \"run\",",
                "-  \"instances\": 1",
                "+  \"instances\": 3",
                " }"
            ]
        );
    }

    #[test]
    fn equal_texts_keep_every_line_and_empty_ones_add_or_remove_all() {
        assert!(
            line_diff("a\nb\n", "a\nb\n")
                .iter()
                .all(|line| line.change == LineChange::Kept)
        );
        assert_eq!(marked(&line_diff("", "a\nb")), ["+a", "+b"]);
        assert_eq!(marked(&line_diff("a\nb", "")), ["-a", "-b"]);
        assert!(line_diff("", "").is_empty());
    }

    #[test]
    fn the_longest_common_lines_are_kept_in_the_middle() {
        let diff = line_diff("a\nx\nb\ny\nc\n", "a\nb\nz\nc\n");
        assert_eq!(marked(&diff), [" a", "-x", " b", "-y", "+z", " c"]);
    }

    #[test]
    fn a_diff_rebuilds_both_texts_also_past_the_table_bound() {
        let old: String = (0..2500).map(|i| format!("line {i}\n")).collect();
        let new: String = (0..2500)
            .map(|i| format!("line {}\n", i * 7 % 2500))
            .collect();
        let diff = line_diff(&old, &new);
        assert_eq!(sides(&diff), (old.clone(), new.clone()));
        let small_old = "a\nb\nc\nd\n";
        let small_new = "b\nx\nd\ne\n";
        assert_eq!(
            sides(&line_diff(small_old, small_new)),
            (small_old.to_owned(), small_new.to_owned())
        );
    }
}
