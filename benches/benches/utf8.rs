//! UTF-8 validation of text payloads: the incremental validator the decoder
//! runs, against `std::str::from_utf8` in the same run.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use uringws_benches::{ascii_text, multibyte_text};
use uringws_protocol::utf8::Utf8Validator;

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (kind, make) in [
        ("ascii", ascii_text as fn(usize) -> Vec<u8>),
        ("multibyte", multibyte_text),
    ] {
        for size in [64usize, 16 << 10, 1 << 20] {
            let text = make(size);
            group.throughput(Throughput::Bytes(text.len() as u64));
            let id = format!("{kind}/{size}");
            group.bench_with_input(BenchmarkId::new("validator", &id), &text, |b, t| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    v.feed(black_box(t)).and_then(|_| v.finish())
                })
            });
            group.bench_with_input(BenchmarkId::new("std", &id), &text, |b, t| {
                b.iter(|| std::str::from_utf8(black_box(t)).is_ok())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
