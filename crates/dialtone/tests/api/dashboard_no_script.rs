//! The keys page's dialogs have pages of their own for a browser without JavaScript:
//! `+ New API Key` submits `GET /dashboard/keys?new=1`, which renders the form open,
//! and Revoke submits `GET /dashboard/keys/{id}/revoke`, a confirmation page whose
//! form revokes the key (then REST answers 401). Members are refused the confirmation,
//! another organization's key is not found, and an already revoked key goes back to
//! the list. Rotate, Restrict and Set limits (`GET /dashboard/keys/{id}/rotate`,
//! `…/restrict`, `…/limits`) and the webhook's Rotate secret
//! (`GET /dashboard/webhooks/{id}/rotate-secret`) are pages the same way.

use dialtone_domain::auth::KeyRequest;
use dialtone_domain::id::new_id;
use dialtone_domain::users::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use secrecy::ExposeSecret;

use crate::common::{TestApp, unauthorized_body};
use crate::dashboard::{FormExt, page, sign_in, submit, user};

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

/// The `<form method="post" action="…">` of a page, with its fields as a browser
/// would send them (hidden inputs and each select's first option included).
fn post_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!(r#"<form method="post" action="{action}""#))
        .expect("the page's form");
    let form = &html[start..start + html[start..].find("</form>").expect("form end")];
    let attr = |tag: &str, name: &str| {
        let marker = format!(r#"{name}=""#);
        tag.find(&marker).map(|i| {
            let rest = &tag[i + marker.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_owned()
        })
    };
    let mut fields = Vec::new();
    for tag in form.split('<').skip(1) {
        if tag.starts_with("input ") {
            if let Some(name) = attr(tag, "name") {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
        } else if tag.starts_with("select ")
            && let Some(name) = attr(tag, "name")
        {
            fields.push((name, String::new()));
        } else if tag.starts_with("option ")
            && let Some(last) = fields.last_mut()
            && last.1.is_empty()
        {
            last.1 = attr(tag, "value").unwrap_or_default();
        }
    }
    fields
}

#[tokio::test]
async fn rotate_restrict_limits_and_webhook_secret_have_pages_without_javascript() {
    let app = TestApp::spawn_with(|c| c.webhook_allow_private = true).await;
    user(&app, "owner@example.com", Role::Owner).await;
    user(&app, "member@example.com", Role::Member).await;
    let owner = sign_in(&app, "owner@example.com").await;
    let member = sign_in(&app, "member@example.com").await;
    let made = app
        .create_key(KeyRequest {
            name: "CRM sync".into(),
            ..Default::default()
        })
        .await;
    let secret = made.secret.expose_secret().to_owned();
    let id = made.key.id.clone();
    // Used for contacts only, so Restrict is offered.
    let (status, _) = app.get("/v1/contacts", &secret).await;
    assert_eq!(status, StatusCode::OK);

    // Each button of the row is a GET form: it works without scripts.
    let (_, html) = page(&app, &owner.cookie, "/dashboard/keys").await;
    for what in ["rotate", "limits", "restrict"] {
        assert!(
            html.contains(&format!(
                r#"method="get" action="/dashboard/keys/{id}/{what}">"#
            )),
            "{what}"
        );
    }
    // The new-key form's Cancel and × are links back to the list.
    assert!(html.contains(r#"<a href="/dashboard/keys" class="btn" data-close>Cancel</a>"#));
    assert!(html.contains(r#"<a href="/dashboard/keys" class="icon-btn" data-close"#));

    // Each page: a member is refused it as the POST refuses them, an unknown key or
    // another organization's is not found.
    let other_org = app.store.create_org("Other").await.expect("org");
    let digester = dialtone_domain::keys::KeyDigester::new(&app.config.server_secret);
    let foreign = dialtone_api::keys::KeyIssuer {
        store: &app.store,
        digester: &digester,
        brand: &app.config.key_brand,
        cap: app.config.key_cap,
        ip: None,
    }
    .create(
        dialtone_domain::auth::Actor::Operator,
        &other_org.id,
        KeyRequest {
            name: "theirs".into(),
            ..Default::default()
        },
    )
    .await
    .expect("another organization's key");
    for what in ["rotate", "limits", "restrict"] {
        let path = format!("/dashboard/keys/{id}/{what}");
        let (status, html) = page(&app, &member.cookie, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
        assert!(!html.contains("name=\"old_key_expires\""), "{what}");
        assert!(!html.contains("name=\"max_concurrent_calls\""), "{what}");
        for missing in [new_id("key"), "nonsense".to_owned(), foreign.key.id.clone()] {
            let (status, _) = page(
                &app,
                &owner.cookie,
                &format!("/dashboard/keys/{missing}/{what}"),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{what} {missing}");
        }
    }

    // Set limits: the page holds the form, which posts to the limits route.
    let path = format!("/dashboard/keys/{id}/limits");
    let (status, html) = page(&app, &owner.cookie, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Limits of “CRM sync”"));
    let mut fields = post_fields(&html, &path);
    assert!(fields.iter().any(|(k, _)| k == "csrf"));
    for (k, v) in &mut fields {
        if k == "max_concurrent_calls" {
            *v = "2".into();
        }
        if k == "allowed_destination_countries" {
            *v = "US, CA".into();
        }
    }
    let form: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = submit(&app, &owner, &path, &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    assert!(html.contains("Limits of “CRM sync” saved: 2 calls at once · to CA, US."));
    let stored = app.store.get_key(&app.org.id, &id).await.expect("key");
    assert_eq!(stored.limits.max_concurrent_calls, Some(2));
    assert_eq!(
        stored.limits.allowed_destination_countries,
        Some(vec!["CA".to_owned(), "US".to_owned()])
    );

    // Restrict: the suggested permissions travel in the page's form.
    let path = format!("/dashboard/keys/{id}/restrict");
    let (status, html) = page(&app, &owner.cookie, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Restrict “CRM sync” to what it uses"));
    let fields = post_fields(&html, &format!("/dashboard/keys/{id}/rotate"));
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "permissions" && v == "contacts:read"),
        "{fields:?}"
    );
    // Posted as the page holds it: a replacement holding only what was used.
    let form: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = submit(&app, &owner, &format!("/dashboard/keys/{id}/rotate"), &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let narrow = crate::dashboard::secret_in(&resp.text().await.expect("html"))
        .expect("the restricted key, once");
    let (status, _) = app.get("/v1/contacts", &narrow).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v1/calls", &narrow).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "restricted to contacts:read");
    // A key that used every permission it holds (here: none used at all) has nothing
    // to restrict: said on the keys page, as a 409.
    let unused = app
        .create_key(KeyRequest {
            name: "Idle".into(),
            ..Default::default()
        })
        .await;
    let (status, html) = page(
        &app,
        &owner.cookie,
        &format!("/dashboard/keys/{}/restrict", unused.key.id),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("nothing to restrict"));

    // Rotate: the page's form rotates; the new secret is shown once, the old key
    // keeps working (the first choice: until revoked).
    let path = format!("/dashboard/keys/{id}/rotate");
    let (status, html) = page(&app, &owner.cookie, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Rotate “CRM sync”"));
    let fields = post_fields(&html, &path);
    assert!(fields.contains(&("old_key_expires".into(), "keep".into())));
    // Without the CSRF token the POST is still refused.
    let resp = crate::dashboard::browser()
        .post(format!("{}{path}", app.url))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .form(&[("old_key_expires", "keep")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = submit(&app, &owner, &path, &[("old_key_expires", "keep")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    let new_secret = crate::dashboard::secret_in(&html).expect("the new secret, once");
    // Copy needs a script: the button is rendered hidden (the script shows it).
    assert!(html.contains(r#"data-copy="new-secret" hidden"#));
    assert_ne!(new_secret, secret);
    for s in [&secret, &new_secret] {
        let (status, _) = app.get("/v1/contacts", s).await;
        assert_eq!(status, StatusCode::OK);
    }
    // A revoked key has nothing to rotate: said on the keys page, as the POST says it.
    let resp = submit(&app, &owner, &format!("/dashboard/keys/{id}/revoke"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for what in ["rotate", "restrict"] {
        let (status, html) =
            page(&app, &owner.cookie, &format!("/dashboard/keys/{id}/{what}")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{what}");
        assert!(html.contains("cannot be rotated"), "{what}");
    }

    // The webhook's Rotate secret: a GET form to a page asking, which posts the rotation.
    let admin = app.admin_key().await;
    let (status, hook) = app
        .post(
            "/v1/webhooks",
            &admin,
            serde_json::json!({"url": "http://127.0.0.1:9/hooks", "events": ["call.completed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let here = format!("/dashboard/webhooks/{hook_id}");
    let (_, html) = page(&app, &owner.cookie, &here).await;
    assert!(html.contains(&format!(
        r#"<form method="get" action="{here}/rotate-secret">"#
    )));
    let path = format!("{here}/rotate-secret");
    let (status, html) = page(&app, &owner.cookie, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Rotate the signing secret of http://127.0.0.1:9/hooks?"));
    assert!(html.contains(&format!(r#"<form method="post" action="{path}""#)));
    assert!(html.contains(&format!(r#"href="{here}">Cancel</a>"#)));
    let (status, _) = page(&app, &member.cookie, &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another workspace's endpoint is not found from this one.
    let other_ws = app
        .store
        .create_workspace(&app.org.id, "Other")
        .await
        .expect("workspace");
    let there = app
        .key(KeyRequest {
            name: "there".into(),
            workspace_id: Some(other_ws.id.clone()),
            ..Default::default()
        })
        .await;
    let (status, theirs) = app
        .post(
            "/v1/webhooks",
            &there,
            serde_json::json!({"url": "http://127.0.0.1:9/other", "events": ["call.completed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    for missing in [
        theirs["id"].as_str().expect("id").to_owned(),
        "whk_01jd5x7c2m8n4p6q8r0s2t4v6w".to_owned(),
        "nonsense".to_owned(),
    ] {
        let (status, _) = page(
            &app,
            &owner.cookie,
            &format!("/dashboard/webhooks/{missing}/rotate-secret"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    let resp = crate::dashboard::browser()
        .post(format!("{}{path}", app.url))
        .header(reqwest::header::COOKIE, &owner.cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = submit(&app, &owner, &path, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    let whsec = crate::dashboard::secret_in(&html).expect("the new signing secret, once");
    assert!(whsec.starts_with("whsec_"), "{whsec}");
    assert!(html.contains("The previous one keeps signing too until"));
    app.finish().await;
}
