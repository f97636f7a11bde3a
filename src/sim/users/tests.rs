use super::*;

fn dir(lifetime: Duration) -> Directory {
    let user = |id, name: &str, admin| User {
        id,
        name: name.into(),
        password: format!("{name}pw"),
        admin,
        home: None,
    };
    Directory::new(
        vec![user(500, "admin", true), user(501, "alice", false)],
        lifetime,
    )
}

#[test]
fn login_checks_password_and_token_authenticates() {
    let d = dir(Duration::from_secs(60));
    assert_eq!(
        d.login("alice", "wrong").unwrap_err().class,
        ErrorClass::LoginFailed
    );
    assert_eq!(
        d.login("nobody", "x").unwrap_err().class,
        ErrorClass::LoginFailed
    );
    let t = d.login("alice", "alicepw").unwrap();
    assert!(t.starts_with("1:"));
    assert_eq!(
        d.login_counts(),
        (1, 2),
        "accepted and refused logins are counted"
    );
    assert_eq!(d.authenticate(&t).unwrap().name, "alice");
    assert_eq!(d.expire_all(), 1);
    assert_eq!(
        d.authenticate(&t).unwrap_err().class,
        ErrorClass::Unauthorized
    );
}

#[test]
fn zero_lifetime_tokens_are_expired() {
    let d = dir(Duration::ZERO);
    let t = d.login("admin", "adminpw").unwrap();
    assert_eq!(
        d.authenticate(&t).unwrap_err().class,
        ErrorClass::Unauthorized
    );
}

#[test]
fn identity_find_by_name_sid_and_id() {
    let d = dir(Duration::from_secs(60));
    let alice = d.find_identity(&json!({"name": "alice"})).unwrap();
    assert_eq!(alice["auth_id"], "501");
    let by_sid = d.find_identity(&json!({"sid": alice["sid"]})).unwrap();
    assert_eq!(by_sid["name"], "alice");
    assert_eq!(
        d.find_identity(&json!({"auth_id": 513})).unwrap()["name"],
        "Users"
    );
    assert_eq!(
        d.find_identity(&json!({"name": "zed"})).unwrap_err().class,
        ErrorClass::NoSuchIdentity
    );
}
