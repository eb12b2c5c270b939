#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sse_proto_fuzz::groups(data));
