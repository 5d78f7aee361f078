//! Child processes a test runs.

/// Collects a child's stderr as it comes (bytes as written: escape codes too).
pub fn collect_stderr(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::BufRead;
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (pipe, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
    std::thread::spawn(move || {
        let mut pipe = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            sink.lock().expect("stderr lock").push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    stderr
}
