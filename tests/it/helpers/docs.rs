//! The repository's own documents, as tests read them.

/// The text of a repository file (README.md, docs/…).
pub fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// The code block of a repository document between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->`, without its fence.
pub fn doc_block(path: &str, name: &str) -> String {
    let text = repo_file(path);
    let block = text
        .split(&format!("<!-- {name}:start -->"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("<!-- {name}:end -->")).next())
        .unwrap_or_else(|| panic!("{path} has no {name} markers"));
    let fenced = block.trim().trim_start_matches("```").trim_end_matches("```");
    fenced.split_once('\n').map(|(_lang, code)| code).unwrap_or_default().trim().to_string()
}
