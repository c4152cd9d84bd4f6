//! Whatever a scenario file holds, parsing and checking it gives a scenario
//! or an error located at a line and column of the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match lab::scenario::Scenario::parse(std::path::Path::new("fuzz.yaml"), text) {
        Ok(scenario) => {
            let _ = scenario.planned_nodes();
        }
        Err(error) => {
            assert!(!error.problems.is_empty(), "an error without a problem");
            for problem in &error.problems {
                assert!(problem.line >= 1 && problem.column >= 1, "unlocated: {problem:?}");
            }
            let _ = error.to_string();
        }
    }
});
