#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_rest_proxy::fuzzing::trace_context(data));
