//! GitLab's side of token checks as a process, for load tests: `fake-gitlab 127.0.0.1:9200`
//! serves OIDC discovery and the key set, and prints one line: a token GitLab would send with
//! a code suggestion (every Duo scope, valid for an hour), signed with the key it serves.

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9200".into());
    let gitlab = hearth_testkit::FakeGitlab::start_on(&addr).await;
    let scopes = ["complete_code", "generate_code", "duo_chat"];
    let token = hearth_testkit::mint(&gitlab.claims(&scopes), "k1", hearth_testkit::GITLAB_KEY);
    println!("{token}");
    std::future::pending::<()>().await;
}
