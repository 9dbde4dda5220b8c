//! Affinity keys: which requests belong together, so they go to the same replica (its prefix
//! cache holds their common start) and a newer one may supersede an older one. A key is the
//! client and what it works on: for a completion the file, for chat the conversation.

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, header};
use hearth_providers::ChatMessage;

use super::stable_hash;

/// Who is asking, as far as the request tells: its peer address, the address a proxy says it
/// forwards for, and its credentials. Requests that share all three are one client's.
pub(crate) fn client(headers: &HeaderMap, peer: Option<&ConnectInfo<std::net::SocketAddr>>) -> u64 {
    let peer = match peer.map(|c| c.0.ip()) {
        Some(std::net::IpAddr::V4(a)) => a.to_ipv6_mapped().octets(),
        Some(std::net::IpAddr::V6(a)) => a.octets(),
        None => [0; 16],
    };
    // Looked up by `HeaderName`: by `&str` the name is parsed again on every call.
    const FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
    let header = |name| headers.get(name).map(|v| v.as_bytes()).unwrap_or_default();
    stable_hash(&[
        &peer,
        header(&FORWARDED_FOR),
        header(&header::AUTHORIZATION),
    ])
}

/// A completion: the client, the user it names, and the prompt's first lines, which stay the
/// same while one file is edited and so stand for the file.
pub(crate) fn completion(client: u64, user: Option<&str>, prompt: &str) -> u64 {
    stable_hash(&[
        &client.to_le_bytes(),
        user.unwrap_or("").as_bytes(),
        first_lines(prompt).as_bytes(),
    ])
}

/// A conversation: the client, the user and its opening messages, which stay while it grows.
pub(crate) fn chat(client: u64, user: Option<&str>, messages: &[ChatMessage]) -> u64 {
    let client = client.to_le_bytes();
    let mut parts: Vec<&[u8]> = vec![&client, user.unwrap_or("").as_bytes()];
    parts.extend(messages.iter().take(2).map(|m| m.content.as_bytes()));
    stable_hash(&parts)
}

/// A GitLab code request: the instance, the user (GitLab names it in a header; the token itself
/// when it does not) and the file.
pub(crate) fn gitlab_file(headers: &HeaderMap, project: Option<&str>, file: &str) -> u64 {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes()).unwrap_or_default();
    let user = match header("x-gitlab-global-user-id") {
        [] => header("authorization"),
        id => id,
    };
    stable_hash(&[
        header("x-gitlab-instance-id"),
        user,
        project.unwrap_or("").as_bytes(),
        file.as_bytes(),
    ])
}

/// The first three lines of a prompt, within its first 512 bytes.
fn first_lines(prompt: &str) -> &str {
    let mut end = prompt.len().min(512);
    while !prompt.is_char_boundary(end) {
        end -= 1;
    }
    let head = &prompt[..end];
    match head.match_indices('\n').nth(2) {
        Some((i, _)) => &head[..i],
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystrokes_in_one_file_share_a_key_and_files_and_users_do_not() {
        let file = "use std::io;\nuse std::fs;\n\nfn main() {\n    let x";
        let a = completion(7, Some("ann"), file);
        assert_eq!(a, completion(7, Some("ann"), &format!("{file} = 1;")));
        assert_ne!(a, completion(7, Some("bob"), file));
        assert_ne!(a, completion(8, Some("ann"), file));
        assert_ne!(
            a,
            completion(7, Some("ann"), "import os\nimport sys\n\ndef main():\n")
        );
    }

    #[test]
    fn first_lines_never_split_a_character() {
        let wide = "é".repeat(400);
        assert!(first_lines(&wide).len() <= 512);
        assert_eq!(first_lines("a\nb\nc\nd"), "a\nb\nc");
        assert_eq!(first_lines("short"), "short");
    }

    #[test]
    fn a_conversation_keeps_its_key_as_it_grows() {
        let msg = |c: &str| ChatMessage {
            role: "user".into(),
            content: c.into(),
            ..Default::default()
        };
        let opening = [msg("system prompt"), msg("first question")];
        let longer = [
            msg("system prompt"),
            msg("first question"),
            msg("answer"),
            msg("more"),
        ];
        assert_eq!(chat(1, None, &opening), chat(1, None, &longer));
        assert_ne!(chat(1, None, &opening), chat(1, Some("u"), &opening));
    }

    #[test]
    fn gitlab_users_are_told_apart_by_their_id_or_token() {
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-global-user-id", "u1".parse().unwrap());
        let a = gitlab_file(&h, Some("g/p"), "a.rs");
        assert_ne!(a, gitlab_file(&h, Some("g/p"), "b.rs"));
        h.insert("x-gitlab-global-user-id", "u2".parse().unwrap());
        assert_ne!(a, gitlab_file(&h, Some("g/p"), "a.rs"));
    }
}
