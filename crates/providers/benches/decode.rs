//! Decoding upstream streams: server-sent events (OpenAI-compatible servers) and AWS
//! event-stream frames (Bedrock), fed in small pieces as the network delivers them.
//! `cargo bench -p hearth-providers`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hearth_providers::{FrameReader, SseDecoder};

fn sse_decoding(c: &mut Criterion) {
    // 100 chat-completion chunks and the end marker, as vLLM sends them, cut into 7-byte
    // pieces.
    let mut stream = String::new();
    for i in 0..100 {
        stream.push_str(&format!(
            "data: {{\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    stream.push_str("data: [DONE]\n\n");
    let pieces: Vec<&[u8]> = stream.as_bytes().chunks(7).collect();
    let mut group = c.benchmark_group("sse_decoder");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("100_events_in_7B_pieces", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::new();
            let mut events = 0;
            for piece in &pieces {
                decoder.push_each(black_box(piece), |_| events += 1);
            }
            events
        })
    });
    group.finish();
}

fn event_stream_decoding(c: &mut Criterion) {
    // 100 ConverseStream contentBlockDelta frames, made with the SDK's own encoder.
    let mut stream = Vec::new();
    for i in 0..100 {
        let payload = format!(
            "{{\"contentBlockIndex\":0,\"delta\":{{\"text\":\"tok{i} \"}},\"p\":\"abcdefghijklmnopqrstuvwxyz\"}}"
        );
        let message = aws_smithy_types::event_stream::Message::new(payload.into_bytes())
            .add_header(aws_smithy_types::event_stream::Header::new(
                ":event-type",
                aws_smithy_types::event_stream::HeaderValue::String("contentBlockDelta".into()),
            ))
            .add_header(aws_smithy_types::event_stream::Header::new(
                ":message-type",
                aws_smithy_types::event_stream::HeaderValue::String("event".into()),
            ));
        if let Err(err) = aws_smithy_eventstream::frame::write_message_to(&message, &mut stream) {
            panic!("encoding a frame: {err}");
        }
    }
    let mut group = c.benchmark_group("event_stream_frames");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for piece in [7, 1024] {
        let pieces: Vec<&[u8]> = stream.chunks(piece).collect();
        group.bench_function(format!("100_frames_in_{piece}B_pieces"), |b| {
            b.iter(|| {
                let mut reader = FrameReader::new(1 << 20);
                let mut frames = 0;
                for piece in &pieces {
                    let (messages, error) = reader.push(black_box(piece));
                    assert!(error.is_none());
                    frames += messages.len();
                }
                frames
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sse_decoding, event_stream_decoding);
criterion_main!(benches);
