//! The keys page's dialogs have pages of their own for a browser without JavaScript:
//! `+ New API Key` submits `GET /dashboard/keys?new=1`, which renders the form open,
//! and Revoke submits `GET /dashboard/keys/{id}/revoke`, a confirmation page whose
//! form revokes the key (then REST answers 401). Members are refused the confirmation,
//! another organization's key is not found, and an already revoked key goes back to
//! the list.

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::id::new_id;
use dialtone_domain::users::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use secrecy::ExposeSecret;

use crate::common::{TestApp, unauthorized_body};
use crate::dashboard::{page, sign_in, submit, user};

#[tokio::test]
async fn keys_page_new_and_revoke_work_without_javascript() {
    let app = TestApp::spawn().await;
    user(&app, "owner@example.com", Role::Owner).await;
    user(&app, "member@example.com", Role::Member).await;
    let owner = sign_in(&app, "owner@example.com").await;
    let member = sign_in(&app, "member@example.com").await;
    let made = app
        .create_key(KeyRequest {
            name: "Billing sync".into(),
            ..Default::default()
        })
        .await;
    let secret = made.secret.expose_secret().to_owned();
    let id = made.key.id.clone();

    // The buttons are forms: they work without scripts.
    let (_, html) = page(&app, &owner.cookie, "/dashboard/keys").await;
    assert!(html.contains(
        r#"<form method="get" action="/dashboard/keys#new-key"><input type="hidden" name="new" value="1">"#
    ));
    assert!(html.contains(&format!(
        r#"<form method="get" action="/dashboard/keys/{id}/revoke">"#
    )));
    assert!(!html.contains(r#"aria-labelledby="new-key-title" open"#));
    // `?new=1`: the new-key form, open on the page.
    let (status, html) = page(&app, &owner.cookie, "/dashboard/keys?new=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"aria-labelledby="new-key-title" open"#));
    // A member has no form to open.
    let (status, html) = page(&app, &member.cookie, "/dashboard/keys?new=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("new-key-title"));

    // The confirmation page: the same words as the dialog, a form posting the revoke.
    let path = format!("/dashboard/keys/{id}/revoke");
    let (status, html) = page(&app, &owner.cookie, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Revoke “Billing sync”?"));
    assert!(html.contains("immediate and permanent"));
    assert!(html.contains(&format!(r#"<form method="post" action="{path}""#)));
    // Asking revokes nothing.
    let (status, _) = app.get("/v1/contacts", &secret).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = page(&app, &member.cookie, &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for missing in [new_id("key"), "nonsense".to_owned()] {
        let (status, _) = page(
            &app,
            &owner.cookie,
            &format!("/dashboard/keys/{missing}/revoke"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }

    let resp = submit(&app, &owner, &path, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, body) = app.get("/v1/contacts", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, unauthorized_body());
    // Asked again (a back button): to the list, which says it is revoked.
    let resp = crate::dashboard::browser()
        .get(format!("{}{path}", app.url))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(to, format!("/dashboard/keys?revoked={id}"));
    let (_, html) = page(&app, &owner.cookie, &to).await;
    assert!(html.contains("is revoked. Requests with it now get 401 Unauthorized."));
    app.finish().await;
}
