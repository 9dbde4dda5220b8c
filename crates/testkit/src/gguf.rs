//! Writes a tiny random-weight Llama model in GGUF (version 3) that llama.cpp loads: a
//! SentencePiece-style vocabulary with byte fallback, a plain chat template, F32 tensors.
//! Its output is gibberish — tests check the plumbing, not the prose.

use std::io::Write;
use std::path::Path;

const ALIGN: usize = 32;
// GGUF value types.
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
// Token kinds llama.cpp knows.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const BYTE: i32 = 6;

const EMBD: u64 = 64;
const HEADS: u32 = 4;
const LAYERS: u32 = 2;
const CONTEXT: u32 = 2048;
const WORDS: [&str; 12] = [
    "def", "return", "import", "class", "self", "for", "in", "if", "print", "hello", "world", "the",
];

struct Buf(Vec<u8>);

impl Buf {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn key(&mut self, k: &str, ty: u32) {
        self.str(k);
        self.u32(ty);
    }
    fn kv_u32(&mut self, k: &str, v: u32) {
        self.key(k, T_U32);
        self.u32(v);
    }
    fn kv_f32(&mut self, k: &str, v: f32) {
        self.key(k, T_F32);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn kv_bool(&mut self, k: &str, v: bool) {
        self.key(k, T_BOOL);
        self.0.push(u8::from(v));
    }
    fn kv_str(&mut self, k: &str, v: &str) {
        self.key(k, T_STRING);
        self.str(v);
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(ALIGN) {
            self.0.push(0);
        }
    }
}

/// A deterministic generator for small weights, roughly normal with σ ≈ 0.02.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        let mut sum = 0.0f32;
        for _ in 0..4 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            sum += (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        sum * 0.035
    }
}

/// Writes the model to `path`.
pub fn write_tiny_llama(path: &Path) -> std::io::Result<()> {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut kinds = vec![UNKNOWN, CONTROL, CONTROL];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        kinds.push(BYTE);
    }
    let mut pieces: Vec<String> = vec!["\u{2581}".into()];
    pieces.extend((33u8..127).map(|c| (c as char).to_string()));
    pieces.extend(WORDS.iter().map(|w| format!("\u{2581}{w}")));
    pieces.extend(WORDS.iter().map(|w| w.to_string()));
    let first_piece = tokens.len();
    for p in pieces {
        tokens.push(p);
        kinds.push(NORMAL);
    }
    let n_vocab = tokens.len() as u64;
    let scores: Vec<f32> = (0..tokens.len())
        .map(|i| {
            if i < first_piece {
                0.0
            } else {
                -((i - first_piece) as f32)
            }
        })
        .collect();

    let ff = 2 * EMBD;
    let mut tensors: Vec<(String, Vec<u64>, bool)> = vec![
        ("token_embd.weight".into(), vec![EMBD, n_vocab], false),
        ("output_norm.weight".into(), vec![EMBD], true),
        ("output.weight".into(), vec![EMBD, n_vocab], false),
    ];
    for l in 0..LAYERS {
        let b = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.push((b("attn_norm"), vec![EMBD], true));
        for n in ["attn_q", "attn_k", "attn_v", "attn_output"] {
            tensors.push((b(n), vec![EMBD, EMBD], false));
        }
        tensors.push((b("ffn_norm"), vec![EMBD], true));
        tensors.push((b("ffn_gate"), vec![EMBD, ff], false));
        tensors.push((b("ffn_up"), vec![EMBD, ff], false));
        tensors.push((b("ffn_down"), vec![ff, EMBD], false));
    }

    let mut h = Buf(Vec::new());
    h.0.extend_from_slice(b"GGUF");
    h.u32(3);
    h.u64(tensors.len() as u64);
    let kv_count_at = h.0.len();
    h.u64(0);
    let mut kv = 0u64;
    let mut count = |_: ()| kv += 1;
    h.kv_str("general.architecture", "llama");
    count(());
    h.kv_str("general.name", "hearth-tiny-random-llama");
    count(());
    h.kv_u32("general.file_type", 0);
    count(());
    h.kv_u32("general.alignment", ALIGN as u32);
    count(());
    for (k, v) in [
        ("llama.context_length", CONTEXT),
        ("llama.embedding_length", EMBD as u32),
        ("llama.block_count", LAYERS),
        ("llama.feed_forward_length", ff as u32),
        ("llama.attention.head_count", HEADS),
        ("llama.attention.head_count_kv", HEADS),
        ("llama.rope.dimension_count", EMBD as u32 / HEADS),
        ("llama.vocab_size", n_vocab as u32),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 2),
        ("tokenizer.ggml.unknown_token_id", 0),
    ] {
        h.kv_u32(k, v);
        count(());
    }
    h.kv_f32("llama.rope.freq_base", 10000.0);
    count(());
    h.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    count(());
    h.kv_str("tokenizer.ggml.model", "llama");
    count(());
    h.key("tokenizer.ggml.tokens", T_ARRAY);
    h.u32(T_STRING);
    h.u64(n_vocab);
    for t in &tokens {
        h.str(t);
    }
    count(());
    h.key("tokenizer.ggml.token_type", T_ARRAY);
    h.u32(T_I32);
    h.u64(n_vocab);
    for k in &kinds {
        h.0.extend_from_slice(&k.to_le_bytes());
    }
    count(());
    h.key("tokenizer.ggml.scores", T_ARRAY);
    h.u32(T_F32);
    h.u64(n_vocab);
    for s in &scores {
        h.0.extend_from_slice(&s.to_le_bytes());
    }
    count(());
    h.kv_bool("tokenizer.ggml.add_bos_token", true);
    count(());
    h.kv_bool("tokenizer.ggml.add_eos_token", false);
    count(());
    h.kv_str(
        "tokenizer.chat_template",
        "{% for message in messages %}<{{ message['role'] }}> {{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}",
    );
    count(());
    h.0[kv_count_at..kv_count_at + 8].copy_from_slice(&kv.to_le_bytes());

    let mut offset = 0u64;
    let mut data_sizes = Vec::new();
    for (name, dims, _) in &tensors {
        h.str(name);
        h.u32(dims.len() as u32);
        for d in dims {
            h.u64(*d);
        }
        h.u32(0); // F32
        h.u64(offset);
        let bytes = dims.iter().product::<u64>() * 4;
        data_sizes.push(bytes);
        offset += bytes.div_ceil(ALIGN as u64) * ALIGN as u64;
    }
    h.pad();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for ((_, dims, ones), bytes) in tensors.iter().zip(&data_sizes) {
        let n = dims.iter().product::<u64>();
        for _ in 0..n {
            let v = if *ones { 1.0f32 } else { rng.next() };
            h.0.extend_from_slice(&v.to_le_bytes());
        }
        debug_assert_eq!(n * 4, *bytes);
        h.pad();
    }
    let mut f = std::fs::File::create(path)?;
    f.write_all(&h.0)?;
    f.sync_all()
}
