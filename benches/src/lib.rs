//! Criterion micro-benchmarks live in `benches/benches/`; this library holds
//! the inputs they share so every bench measures the same bytes.
