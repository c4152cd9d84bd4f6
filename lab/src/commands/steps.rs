//! `lab steps`: the step catalogue, `docs/steps.md`, which
//! `tests/steps_doc.rs` generates from the step definitions and keeps current.

const CATALOGUE: &str = include_str!("../../../docs/steps.md");

/// The catalogue; with a word, only the steps (under their domains'
/// headings) whose entry or domain mentions it, any case.
pub fn render(word: Option<&str>) -> String {
    let Some(word) = word.map(str::to_lowercase) else { return CATALOGUE.to_string() };
    let mut out = String::new();
    let mut heading = String::new();
    let mut domain_matches = false;
    let mut entries = 0;
    let mut lines = CATALOGUE.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") {
            heading = format!("\n{line}\n\n");
            domain_matches = line.to_lowercase().contains(&word);
        } else if line.starts_with("- **") {
            let mut entry = format!("{line}\n");
            while let Some(more) = lines.next_if(|l| l.starts_with("  ")) {
                entry.push_str(more);
                entry.push('\n');
            }
            if domain_matches || entry.to_lowercase().contains(&word) {
                out.push_str(&std::mem::take(&mut heading));
                out.push_str(&entry);
                entries += 1;
            }
        }
    }
    if entries == 0 {
        return format!("no step mentions `{word}`; `lab steps` lists them all\n");
    }
    out.trim_start().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_keeps_the_steps_that_mention_it_under_their_domain() {
        // A domain's name counts for all its steps.
        let fio = render(Some("FIO"));
        assert!(fio.starts_with("## fio"), "{fio}");
        // Elsewhere, every step kept mentions the word.
        let pods = render(Some("pod"));
        let entries: Vec<&str> = pods.split("\n- **").skip(1).collect();
        assert!(entries.len() >= 5, "{pods}");
        for entry in entries {
            assert!(entry.to_lowercase().contains("pod"), "{entry}");
        }
        assert!(render(Some("no such word at all")).starts_with("no step mentions"));
        assert_eq!(render(None), CATALOGUE);
    }
}
