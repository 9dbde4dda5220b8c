//! Console sessions: sign-in with the admin token, the session cookie, CSRF tokens and the
//! one-shot notices shown after a redirect.
//!
//! Sessions live in memory only (a restart signs everyone out) and there are at most
//! [`MAX_SESSIONS`]: the console is for a handful of administrators, and a bound keeps a
//! script that signs in in a loop from growing the map without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hearth_registry::random_token;
use subtle::ConstantTimeEq;

use crate::AppState;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "hearth_console";
/// Carries the sign-in form's CSRF token before there is a session (double submit).
pub(crate) const PRE_COOKIE: &str = "hearth_console_signin";
/// A session ends this long after sign-in, whatever happens in between.
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// More sessions than this and the oldest is signed out.
pub(crate) const MAX_SESSIONS: usize = 64;
/// How long a wrong token waits before its answer; sign-ins are tried one at a time, so this
/// also caps guessing at one try per delay.
pub(crate) const WRONG_TOKEN_DELAY: Duration = Duration::from_secs(1);

/// What a signed-in browser has.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) csrf: String,
    created: Instant,
    /// Notices for the next page, set before a redirect.
    pub(crate) notices: Vec<Notice>,
}

/// A message at the top of the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Notice {
    /// `ok`, `warn` or `error`: the CSS class and the word read out before it.
    pub(crate) kind: &'static str,
    pub(crate) text: String,
}

impl Notice {
    pub(crate) fn ok(text: impl Into<String>) -> Notice {
        Notice {
            kind: "ok",
            text: text.into(),
        }
    }
    pub(crate) fn warn(text: impl Into<String>) -> Notice {
        Notice {
            kind: "warn",
            text: text.into(),
        }
    }
    pub(crate) fn error(text: impl Into<String>) -> Notice {
        Notice {
            kind: "error",
            text: text.into(),
        }
    }
}

pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// Mark cookies `Secure`: the listener speaks TLS.
    secure: bool,
    /// Held while a wrong token waits, so guesses cannot run in parallel.
    pub(crate) wrong_token: tokio::sync::Mutex<()>,
}

impl Sessions {
    pub(crate) fn new(secure: bool) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            secure,
            wrong_token: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic elsewhere mid-update leaves the map usable; sessions are not worth a 500.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session and returns its id.
    pub(crate) fn create(&self) -> String {
        let id = random_token(32);
        let mut map = self.lock();
        map.retain(|_, s| s.created.elapsed() < LIFETIME);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            id.clone(),
            Session {
                csrf: random_token(32),
                created: Instant::now(),
                notices: Vec::new(),
            },
        );
        id
    }

    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(crate) fn push_notice(&self, id: &str, notice: Notice) {
        if let Some(s) = self.lock().get_mut(id) {
            s.notices.push(notice);
        }
    }

    pub(crate) fn take_notices(&self, id: &str) -> Vec<Notice> {
        self.lock()
            .get_mut(id)
            .map(|s| std::mem::take(&mut s.notices))
            .unwrap_or_default()
    }

    /// The `Set-Cookie` value for a cookie of this console.
    pub(crate) fn cookie(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` value that removes a cookie.
    pub(crate) fn clear_cookie(&self, name: &str) -> HeaderValue {
        self.cookie(name, "", Duration::ZERO)
    }
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares secrets without leaking how much of them matched.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The signed-in session a handler runs under; put in the request by [`require_session`].
#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub(crate) id: String,
    pub(crate) csrf: String,
}

/// Every console page but sign-in: without a live session, go to sign-in.
pub(crate) async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = cookie_value(req.headers(), COOKIE)
        .and_then(|id| state.console.get(id).map(|s| (id.to_string(), s)));
    let Some((id, session)) = session else {
        return Redirect::to("/admin/sign-in").into_response();
    };
    req.extensions_mut().insert(Current {
        id,
        csrf: session.csrf,
    });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_session_goes_when_the_bound_is_reached() {
        let sessions = Sessions::new(false);
        let first = sessions.create();
        let rest: Vec<String> = (1..MAX_SESSIONS).map(|_| sessions.create()).collect();
        assert!(sessions.get(&first).is_some());
        let newest = sessions.create();
        assert!(sessions.get(&first).is_none(), "the oldest was kept");
        assert!(sessions.get(&newest).is_some());
        assert!(rest.iter().all(|id| sessions.get(id).is_some()));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_only_over_tls() {
        let plain = Sessions::new(false).cookie(COOKIE, "abc", LIFETIME);
        let plain = plain.to_str().unwrap_or_default();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Max-Age=28800") && !plain.contains("Secure"));
        let tls = Sessions::new(true).cookie(COOKIE, "abc", LIFETIME);
        assert!(tls.to_str().unwrap_or_default().ends_with("; Secure"));
    }

    #[test]
    fn cookie_value_finds_the_named_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hearth_console=xyz; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
