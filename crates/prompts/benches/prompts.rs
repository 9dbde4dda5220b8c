//! Prompt building and stop scanning, the per-request pure work of a completion.
//! `cargo bench -p hearth-prompts`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hearth_catalog::Family;
use hearth_prompts::{StopScanner, completion_prompt};

/// About 4 KB of Python before the cursor and 1 KB after it.
fn context() -> (String, String) {
    let function = "def add(a, b):\n    \"\"\"Adds two numbers.\"\"\"\n    total = a + b\n    return total\n\n";
    let prefix = function.repeat(4096 / function.len() + 1) + "def mul(a, b):\n    ";
    let suffix = "\n    return product\n\n".to_string() + &function.repeat(1024 / function.len());
    (prefix, suffix)
}

fn prompt_building(c: &mut Criterion) {
    let (prefix, suffix) = context();
    let mut group = c.benchmark_group("completion_prompt/4KB");
    for family in [
        Family::Codestral,
        Family::Codellama,
        Family::Qwen,
        Family::Claude3,
    ] {
        group.bench_function(format!("{family:?}"), |b| {
            b.iter(|| {
                completion_prompt(
                    black_box(family),
                    black_box(&prefix),
                    black_box(&suffix),
                    Some("python"),
                    None,
                )
            })
        });
    }
    group.finish();
}

fn stop_scanning(c: &mut Criterion) {
    // A 64-line answer streamed in 4-character pieces (about one token each), with no stop
    // sequence in it: the scanner's common case, where every piece is checked and released.
    let answer = "    product = a * b\n".repeat(64);
    let pieces: Vec<&str> = answer
        .as_bytes()
        .chunks(4)
        .map(|p| std::str::from_utf8(p).unwrap_or(""))
        .collect();
    let stops = ["\n\n", "<|endoftext|>", "</s>", "[SUFFIX]"].map(String::from);
    c.bench_function("stop_scanner/1.3KB_in_4B_pieces", |b| {
        b.iter(|| {
            let mut scanner = StopScanner::new(stops.clone(), Some("return product".into()));
            let mut shown = 0;
            for piece in &pieces {
                // A stream's text arrives as an owned string per piece (as read from the event).
                shown += scanner.push(black_box(piece).to_string()).len();
            }
            shown + scanner.finish().len()
        })
    });
}

criterion_group!(benches, prompt_building, stop_scanning);
criterion_main!(benches);
