//! The WebAssembly plugin platform, end to end on both databases: built-ins, webhooks,
//! capabilities, hostile plugins, uploads, failure counting, the compile cache.

use magpie_tests::{Backend, TestServer, Value, both_backends, hello_server, json, test_plugin};

both_backends!(
    built_ins_load_and_render_the_timeline,
    video_views_arrive_through_the_webhook,
    capabilities_are_checked,
    hostile_plugins_are_stopped_while_the_server_serves,
    malformed_data_is_capped_and_dropped,
    bad_uploads_are_refused_and_nothing_changes,
    disabled_after_consecutive_failures,
    compiled_plugins_are_cached_across_restarts,
);

fn names(list: &Value) -> Vec<String> {
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["sha256"].as_str().unwrap()
            )
        })
        .collect()
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name} in {list}"))
}

fn event<'a>(activity: &'a Value, key: &str) -> &'a Value {
    activity["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == key)
        .unwrap_or_else(|| panic!("no {key} event in {activity}"))
}

async fn built_ins_load_and_render_the_timeline(backend: Backend) {
    let s = TestServer::start(backend).await;
    let list = s.get("/api/plugins").await.expect(200);
    for name in ["core-events", "video-events"] {
        let p = find(&list, name);
        assert_eq!(p["kind"], "event-types");
        assert_eq!(p["origin"], "built-in");
        assert_eq!(p["enabled"], true);
    }
    assert_eq!(
        find(&list, "video-events")["capabilities"]["granted"],
        json!(["record-events"])
    );
    let core = find(&list, "core-events");
    let keys: Vec<&str> = core["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    for k in [
        "lead.create",
        "lead.source.created",
        "lead.identified",
        "lead.source.identified",
        "lead.apiadded",
        "lead.ipadded",
        "asset.download",
        "campaign.event",
        "campaign.event.scheduled",
        "campaign_membership.change",
        "lead.donotcontact",
        "dynamic.content.sent",
        "email.failed",
        "email.read",
        "email.replied",
        "email.sent",
        "form.submitted",
        "lead.imported",
        "integration_sync_issues",
        "message.queue",
        "page.hit",
        "point.gained",
        "segment_membership",
        "stage.changed",
        "sms_reply",
        "lead.utmtagsadded",
        "lead.note",
        "lead.merged",
        "lead.tags",
    ] {
        assert!(keys.contains(&k), "core-events declares {k}");
    }

    let id = s
        .create_contact(json!({"email": "r@example.org", "tags": ["vip"], "ipAddress": "1.2.3.4"}))
        .await;
    s.post(&format!("/api/contacts/{id}/points/plus/10"), json!({}))
        .await
        .expect(200);
    let act = s
        .get(&format!("/api/contacts/{id}/activity"))
        .await
        .expect(200);
    assert_eq!(act["types"]["page.hit"], "Page hit");
    assert_eq!(
        act["types"]["video.view"], "Video view",
        "plugin-declared labels are in the types"
    );
    let created = event(&act, "lead.create");
    assert_eq!(created["eventLabel"], "Contact created");
    assert_eq!(created["rendered"]["summary"], "Contact created (api)");
    assert_eq!(created["rendered"]["raw"], false);
    assert_eq!(
        event(&act, "point.gained")["rendered"]["summary"],
        "+10 points"
    );
    assert_eq!(
        event(&act, "lead.ipadded")["rendered"]["summary"],
        "Accessed from 1.2.3.4"
    );

    // The plugin disabled: the page still renders, events raw and marked.
    let p = s
        .post("/api/plugins/core-events/disable", json!({}))
        .await
        .expect(200);
    assert_eq!(p["plugin"]["enabled"], false);
    assert_eq!(p["plugin"]["disabledAfterFailures"], false);
    let act = s
        .get(&format!("/api/contacts/{id}/activity"))
        .await
        .expect(200);
    let created = event(&act, "lead.create");
    assert_eq!(created["rendered"]["raw"], true);
    assert_eq!(created["rendered"]["summary"], "lead.create");
    assert_eq!(
        created["rendered"]["rows"][0],
        json!({"label": "source", "value": "api"})
    );
    assert_eq!(
        act["types"]["lead.create"], "lead.create",
        "no plugin: the key is the label"
    );
    s.post("/api/plugins/core-events/enable", json!({}))
        .await
        .expect(200);
    let act = s
        .get(&format!("/api/contacts/{id}/activity"))
        .await
        .expect(200);
    assert_eq!(event(&act, "lead.create")["rendered"]["raw"], false);

    // Admins only; the OpenAPI document describes the endpoints.
    let hash = magpie::users::hash_password("user-password").unwrap();
    let mut tx = s.state().store.begin().await.unwrap();
    let user = magpie::store::users::NewUser {
        username: "plain",
        email: "",
        first_name: "Plain",
        last_name: "",
        role: magpie::users::Role::User,
        password_hash: &hash,
    };
    magpie::store::users::insert(&mut tx, &user, magpie::time::now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = s
        .send(
            s.client
                .get(s.url("/api/plugins"))
                .basic_auth("plain", Some("user-password")),
        )
        .await;
    assert_eq!(r.status, 403);
    let doc = s.get("/api/openapi.json").await.expect(200);
    for path in [
        "/api/plugins",
        "/api/plugins/upload",
        "/api/plugins/{name}/capabilities",
        "/api/plugins/{name}/config",
        "/plugins/{name}/hook/{rest}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI documents {path}");
    }
    s.stop().await;
}

async fn video_views_arrive_through_the_webhook(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s
        .create_contact(json!({"email": "Viewer@Example.org"}))
        .await;
    let secret = s.plugin_secret("video-events").await;
    let view = json!({"email": "viewer@example.org", "url": "https://videos.example.org/intro", "title": "Intro", "seconds": 95, "percentage": 75, "referrer": "https://example.org/"});

    let r = s.hook("video-events", "view", None, view.clone()).await;
    assert_eq!(r.status, 401, "no secret: {}", r.text);
    let r = s
        .hook("video-events", "view", Some("wrong"), view.clone())
        .await;
    assert_eq!(r.status, 401, "wrong secret: {}", r.text);
    let r = s
        .hook("no-such-plugin", "view", Some(&secret), view.clone())
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .hook("video-events", "view", Some(&secret), view.clone())
        .await
        .expect(200);
    assert_eq!(r["recorded"], 1, "{r}");
    assert_eq!(r["message"], "1 video view(s) received");
    // ?secret= works too; an unknown contact is skipped, not an error; bad input is a 400.
    let url = s.url(&format!("/plugins/video-events/hook/view?secret={secret}"));
    let r = s.send(s.client.post(url).json(&json!([view, {"email": "nobody@example.org", "url": "https://v.example/x", "seconds": 1}]))).await.expect(200);
    assert_eq!(r["recorded"], 1);
    assert_eq!(
        r["skipped"],
        json!([{"index": 1, "reason": "no such contact"}])
    );
    let r = s
        .hook(
            "video-events",
            "view",
            Some(&secret),
            json!({"email": "viewer@example.org"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("url"), "{}", r.text);

    let act = s
        .get(&format!(
            "/api/contacts/{id}/activity?filters[includeEvents][]=video.view"
        ))
        .await
        .expect(200);
    assert_eq!(act["total"], 2);
    let e = &act["events"][0];
    assert_eq!(e["eventLabel"], "Video view");
    assert_eq!(e["icon"], "fa-play-circle");
    assert_eq!(e["source"], "plugin:video-events");
    assert_eq!(e["extra"]["seconds"], 95);
    assert_eq!(
        e["rendered"]["summary"],
        "Watched \u{201c}Intro\u{201d} (75 %)"
    );
    assert_eq!(e["rendered"]["link"], "https://videos.example.org/intro");

    // A rotated secret replaces the old one.
    let rotated = s
        .post("/api/plugins/video-events/secret/rotate", json!({}))
        .await
        .expect(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(
        s.hook("video-events", "view", Some(&secret), view.clone())
            .await
            .status,
        401
    );
    assert_eq!(
        s.hook("video-events", "view", Some(&rotated), view)
            .await
            .status,
        200
    );
    s.stop().await;
}

async fn capabilities_are_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s
        .create_contact(json!({"email": "target@example.org", "firstname": "Ada"}))
        .await;
    let p = s
        .upload_plugin(test_plugin("hostile_escape"))
        .await
        .expect(201);
    assert_eq!(
        p["plugin"]["capabilities"]["granted"],
        json!([]),
        "uploaded plugins start with nothing granted"
    );
    assert_eq!(
        p["plugin"]["capabilities"]["requested"],
        json!(["read-contacts", "http:http://127.0.0.1:*"])
    );
    let secret = s.plugin_secret("hostile-escape").await;
    let attempt = |path: String| {
        let s = &s;
        let secret = secret.clone();
        async move {
            let r = s
                .hook("hostile-escape", &path, Some(&secret), json!({}))
                .await
                .expect(200);
            r["message"].as_str().unwrap().to_owned()
        }
    };

    for path in [
        "contact",
        "find?email=target@example.org",
        "fields",
        "tags",
        "event",
    ] {
        let m = attempt(format!(
            "{path}{}id={id}",
            if path.contains('?') { "&" } else { "?" }
        ))
        .await;
        assert!(
            m.starts_with("err: denied"),
            "{path} without the capability: {m}"
        );
    }
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(
        c["contact"]["fields"]["all"]["firstname"], "Ada",
        "nothing was written"
    );
    assert_eq!(c["contact"]["tags"], json!([]));

    s.put(
        "/api/plugins/hostile-escape/capabilities",
        json!({"granted": ["read-contacts"]}),
    )
    .await
    .expect(200);
    assert_eq!(
        attempt(format!("contact?id={id}")).await,
        format!("ok: Some({id})")
    );
    assert_eq!(
        attempt("find?email=TARGET@example.org".into()).await,
        format!("ok: Some({id})")
    );
    assert!(
        attempt(format!("fields?id={id}"))
            .await
            .starts_with("err: denied"),
        "read does not grant write"
    );
    // Storage needs no capability; configuration is empty.
    assert_eq!(attempt("storage".into()).await, "ok: Some(\"v\")");
    assert_eq!(
        attempt("config".into()).await,
        "ok: greeting=hi;mode=a",
        "the schema's defaults"
    );

    // Configuration: checked against the schema; secrets masked, kept when sent back masked.
    let r = s
        .put(
            "/api/plugins/hostile-escape/config",
            json!({"values": {"greeting": "hello", "token": "s3cret", "mode": "b"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        r["plugin"]["config"]["values"],
        json!({"greeting": "hello", "token": "********", "mode": "b"})
    );
    assert_eq!(
        attempt("config".into()).await,
        "ok: greeting=hello;token=s3cret;mode=b"
    );
    s.put(
        "/api/plugins/hostile-escape/config",
        json!({"values": {"greeting": "hey", "token": "********", "mode": "b"}}),
    )
    .await
    .expect(200);
    assert_eq!(
        attempt("config".into()).await,
        "ok: greeting=hey;token=s3cret;mode=b"
    );
    for bad in [
        json!({"values": {"mode": "c"}}),
        json!({"values": {"nope": "x"}}),
        json!({"values": {"greeting": ["x"]}}),
        json!({}),
    ] {
        assert_eq!(
            s.put("/api/plugins/hostile-escape/config", bad.clone())
                .await
                .status,
            422,
            "{bad}"
        );
    }
    assert!(
        !s.get("/api/plugins").await.text.contains("s3cret"),
        "secrets never leave the server"
    );
    let bad = s
        .put(
            "/api/plugins/hostile-escape/capabilities",
            json!({"granted": ["root"]}),
        )
        .await;
    assert_eq!(bad.status, 422);

    // Files, environment, sockets: WASI grants nothing.
    let m = attempt("files".into()).await;
    assert!(
        m.starts_with("read err:") && m.contains("list err:") && m.contains("write err:"),
        "{m}"
    );
    assert_eq!(attempt("env".into()).await, "vars 0 args 0");
    let port = hello_server().await;
    let m = attempt(format!("socket?addr=127.0.0.1:{port}")).await;
    assert!(m.starts_with("err:"), "{m}");

    // HTTP: not granted, then granted but loopback, then loopback granted too.
    let url = format!("http://127.0.0.1:{port}/x");
    let m = attempt(format!("http?url={url}")).await;
    assert!(
        m.starts_with("err: denied") && m.contains("not an origin the admin granted"),
        "{m}"
    );
    s.put(
        "/api/plugins/hostile-escape/capabilities",
        json!({"granted": ["read-contacts", "http:http://127.0.0.1:*"]}),
    )
    .await
    .expect(200);
    let m = attempt(format!("http?url={url}")).await;
    assert!(
        m.starts_with("err: denied") && m.contains("private network"),
        "{m}"
    );
    let m = attempt("http?url=http://localhost:1/".into()).await;
    assert!(
        m.starts_with("err: denied"),
        "localhost is not 127.0.0.1's pattern: {m}"
    );
    let m = attempt("http?url=http://not-granted.example/".into()).await;
    assert!(
        m.starts_with("err: denied") && m.contains("not an origin"),
        "{m}"
    );
    s.put(
        "/api/plugins/hostile-escape/capabilities",
        json!({"granted": ["http:http://127.0.0.1:*", "private-network"]}),
    )
    .await
    .expect(200);
    assert_eq!(
        attempt(format!("http?url={url}")).await,
        "ok: (200, \"hello\")"
    );
    s.stop().await;
}

async fn hostile_plugins_are_stopped_while_the_server_serves(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        "[plugins]\ncall_timeout_ms = 3000\nmax_consecutive_failures = 100\nmemory_limit_mb = 32\n",
    )
    .await;
    s.upload_plugin(test_plugin("hostile_crash"))
        .await
        .expect(201);
    let secret = s.plugin_secret("hostile-crash").await;
    let id = s.create_contact(json!({"email": "busy@example.org"})).await;

    // Two calls that loop forever, and meanwhile the server answers other requests.
    let looping: Vec<_> = (0..2)
        .map(|_| {
            let client = s.client.clone();
            let url = s.url("/plugins/hostile-crash/hook/loop");
            let secret = secret.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("x-magpie-secret", secret)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for _ in 0..5 {
        s.get(&format!("/api/contacts/{id}")).await.expect(200);
        assert_eq!(s.get("/healthz").await.status, 200);
        s.get(&format!("/api/contacts/{id}/activity"))
            .await
            .expect(200);
    }
    assert!(
        looping.iter().any(|h| !h.is_finished()),
        "other requests were served while the plugin looped"
    );
    for h in looping {
        assert_eq!(
            h.await.unwrap(),
            502,
            "a looping call is stopped at its deadline"
        );
    }

    let fail = |path: &'static str| {
        let s = &s;
        let secret = secret.clone();
        async move {
            let r = s
                .hook("hostile-crash", path, Some(&secret), json!({}))
                .await;
            (r.status.as_u16(), r.error_message())
        }
    };
    let (status, m) = fail("loop").await;
    assert_eq!(
        (status, m.as_str()),
        (502, "the plugin ran past its deadline and was stopped")
    );
    let (status, m) = fail("alloc").await;
    assert_eq!(
        (status, m.as_str()),
        (502, "the plugin exhausted its memory and was stopped")
    );
    let (status, m) = fail("trap").await;
    assert!(
        status == 502 && m.starts_with("the plugin trapped"),
        "{status} {m}"
    );
    let (status, m) = fail("abort").await;
    assert!(
        status == 502 && m.starts_with("the plugin trapped"),
        "{status} {m}"
    );
    let (status, m) = fail("error").await;
    assert_eq!(
        (status, m.as_str()),
        (422, "an ordinary error"),
        "a guest error is not a failure"
    );
    assert_eq!(
        s.hook("hostile-crash", "ok", Some(&secret), json!({}))
            .await
            .expect(200)["message"],
        "ok"
    );

    let p = s.get("/api/plugins/hostile-crash").await.expect(200);
    assert_eq!(
        p["plugin"]["stats"]["errors"], 6,
        "2 loops, then loop, alloc, trap, abort (the guest error does not count)"
    );
    assert_eq!(
        p["plugin"]["stats"]["consecutiveFailures"], 0,
        "the last call succeeded"
    );
    assert_eq!(p["plugin"]["stats"]["calls"], 8);
    assert!(
        p["plugin"]["stats"]["lastError"]
            .as_str()
            .unwrap()
            .contains("trapped")
    );

    // Rendering: events of a looping, a trapping and a hogging type show raw; the rest of
    // the page renders.
    let state = s.state();
    let mut tx = state.store.begin().await.unwrap();
    let now = magpie::time::now_ms();
    let events: Vec<_> = ["crash.loop", "crash.trap", "crash.alloc", "crash.fine"]
        .iter()
        .enumerate()
        .map(|(i, k)| magpie::timeline::NewEvent::new(id, k, now + i as i64, json!({"k": k})))
        .collect();
    magpie::store::events::insert(&mut tx, &events)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let act = s
        .get(&format!(
            "/api/contacts/{id}/activity?filters[excludeEvents][]=crash.fine"
        ))
        .await
        .expect(200);
    for k in ["crash.loop", "crash.trap", "crash.alloc"] {
        assert_eq!(event(&act, k)["rendered"]["raw"], true, "{k} is shown raw");
    }
    assert_eq!(
        event(&act, "lead.create")["rendered"]["raw"],
        false,
        "other plugins still render"
    );
    let act = s
        .get(&format!(
            "/api/contacts/{id}/activity?filters[includeEvents][]=crash.fine"
        ))
        .await
        .expect(200);
    assert_eq!(event(&act, "crash.fine")["rendered"]["summary"], "fine");

    // A plugin whose describe never returns is refused, in bounded time.
    let r = s.upload_plugin(test_plugin("hostile_describe")).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error_message().contains("describe failed") && r.error_message().contains("deadline"),
        "{}",
        r.text
    );
    s.stop().await;
}

async fn malformed_data_is_capped_and_dropped(backend: Backend) {
    let s = TestServer::start(backend).await;
    let p = s
        .upload_plugin(test_plugin("hostile_data"))
        .await
        .expect(201)["plugin"]
        .clone();
    let keys: Vec<&str> = p["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(!keys.contains(&"Bad Key!"), "invalid keys are dropped");
    let long = p["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "data.longlabel")
        .unwrap();
    assert!(long["label"].as_str().unwrap().chars().count() <= 101);
    assert_eq!(long["icon"], "fa-circle", "icons are classes, nothing else");
    assert!(
        p["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("Bad Key!"))
    );
    s.put(
        "/api/plugins/hostile-data/capabilities",
        json!({"granted": ["record-events"]}),
    )
    .await
    .expect(200);

    let id = s.create_contact(json!({"email": "data@example.org"})).await;
    let act = s
        .get(&format!("/api/contacts/{id}/activity"))
        .await
        .expect(200);
    assert_eq!(
        act["types"]["lead.create"], "Contact created",
        "a plugin cannot take over another's type"
    );

    let secret = s.plugin_secret("hostile-data").await;
    let q = "?email=data@example.org";
    let r = s
        .hook("hostile-data", &format!("ok{q}"), Some(&secret), json!({}))
        .await
        .expect(200);
    assert_eq!(r["recorded"], 1);
    for path in ["undeclared", "badjson", "notobject"] {
        let r = s
            .hook(
                "hostile-data",
                &format!("{path}{q}"),
                Some(&secret),
                json!({}),
            )
            .await
            .expect(200);
        assert_eq!(r["recorded"], 0, "{path}: {r}");
        assert_eq!(r["skipped"].as_array().unwrap().len(), 1, "{path}");
    }
    let r = s
        .hook(
            "hostile-data",
            &format!("flood{q}"),
            Some(&secret),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(r.error_message().contains("malformed"));
    let r = s
        .hook(
            "hostile-data",
            &format!("hugemessage{q}"),
            Some(&secret),
            json!({}),
        )
        .await
        .expect(200);
    assert!(r["message"].as_str().unwrap().chars().count() <= 1001);

    let state = s.state();
    let mut tx = state.store.begin().await.unwrap();
    let now = magpie::time::now_ms();
    let events: Vec<_> = ["data.huge", "data.many", "data.badlink", "data.html"]
        .iter()
        .enumerate()
        .map(|(i, k)| magpie::timeline::NewEvent::new(id, k, now + i as i64, json!({})))
        .collect();
    magpie::store::events::insert(&mut tx, &events)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let act = s
        .get(&format!("/api/contacts/{id}/activity?limit=50"))
        .await
        .expect(200);
    assert!(
        event(&act, "data.huge")["rendered"]["summary"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 501
    );
    assert_eq!(
        event(&act, "data.many")["rendered"]["rows"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(
        event(&act, "data.badlink")["rendered"]["link"],
        json!(null),
        "javascript: links are dropped"
    );
    assert_eq!(
        event(&act, "data.html")["rendered"]["summary"],
        "<script>alert(1)</script>",
        "data, escaped by whoever prints it"
    );
    assert_eq!(event(&act, "data.ok")["rendered"]["summary"], "ok");

    // One result for several events: the page shows them raw.
    let mut tx = state.store.begin().await.unwrap();
    magpie::store::events::insert(
        &mut tx,
        &[magpie::timeline::NewEvent::new(
            id,
            "data.wrongcount",
            now + 10,
            json!({}),
        )],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let act = s
        .get(&format!("/api/contacts/{id}/activity?limit=50"))
        .await
        .expect(200);
    assert_eq!(event(&act, "data.wrongcount")["rendered"]["raw"], true);
    assert_eq!(event(&act, "lead.create")["rendered"]["raw"], false);
    s.stop().await;
}

async fn bad_uploads_are_refused_and_nothing_changes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let before = names(&s.get("/api/plugins").await.expect(200));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not wasm at all".to_vec(), "not a WebAssembly file"),
        (
            b"\0asm\x01\0\0\0".to_vec(),
            "a core WebAssembly module, not a component",
        ),
        (
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
            "not a valid WebAssembly component",
        ),
        (test_plugin("hostile_describe"), "describe failed"),
    ];
    for (bytes, message) in cases {
        let r = s.upload_plugin(bytes).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(
            r.error_message().contains(message),
            "expected `{message}` in {}",
            r.text
        );
    }
    assert_eq!(s.upload_plugin(Vec::new()).await.status, 400);
    let after = s.get("/api/plugins").await.expect(200);
    assert_eq!(names(&after), before, "the running set is unchanged");
    assert!(!s.data_dir.join("plugins/hostile-describe.wasm").exists());

    // A good upload is installed; the same name again is swapped in place.
    s.upload_plugin(test_plugin("hostile_crash"))
        .await
        .expect(201);
    s.upload_plugin(test_plugin("hostile_crash"))
        .await
        .expect(201);
    let list = s.get("/api/plugins").await.expect(200);
    assert_eq!(
        list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "hostile-crash")
            .count(),
        1
    );
    assert!(s.data_dir.join("plugins/hostile-crash.wasm").exists());
    // Built-ins cannot be removed; installed plugins can.
    assert_eq!(s.delete("/api/plugins/core-events").await.status, 400);
    s.delete("/api/plugins/hostile-crash").await.expect(200);
    assert_eq!(names(&s.get("/api/plugins").await.expect(200)), before);
    s.stop().await;
}

async fn disabled_after_consecutive_failures(backend: Backend) {
    let s = TestServer::start_with(backend, "[plugins]\nmax_consecutive_failures = 3\n").await;
    s.upload_plugin(test_plugin("hostile_crash"))
        .await
        .expect(201);
    let secret = s.plugin_secret("hostile-crash").await;
    for _ in 0..2 {
        assert_eq!(
            s.hook("hostile-crash", "trap", Some(&secret), json!({}))
                .await
                .status,
            502
        );
    }
    // A success resets the streak.
    s.hook("hostile-crash", "ok", Some(&secret), json!({}))
        .await
        .expect(200);
    for _ in 0..3 {
        assert_eq!(
            s.hook("hostile-crash", "trap", Some(&secret), json!({}))
                .await
                .status,
            502
        );
    }
    let p = s.get("/api/plugins/hostile-crash").await.expect(200)["plugin"].clone();
    assert_eq!(p["enabled"], false);
    assert_eq!(p["disabledAfterFailures"], true);
    assert!(
        p["disabledReason"]
            .as_str()
            .unwrap()
            .contains("3 consecutive failures"),
        "{p}"
    );
    assert_eq!(p["stats"]["errors"], 5);
    let r = s
        .hook("hostile-crash", "ok", Some(&secret), json!({}))
        .await;
    assert_eq!(r.status, 503, "a disabled plugin is not called: {}", r.text);
    let p = s
        .post("/api/plugins/hostile-crash/enable", json!({}))
        .await
        .expect(200)["plugin"]
        .clone();
    assert_eq!(p["enabled"], true);
    assert_eq!(p["disabledReason"], json!(null));
    s.hook("hostile-crash", "ok", Some(&secret), json!({}))
        .await
        .expect(200);
    s.stop().await;
}

async fn compiled_plugins_are_cached_across_restarts(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    s.upload_plugin(test_plugin("hostile_crash"))
        .await
        .expect(201);
    s.put("/api/plugins/hostile-crash/config", json!({"values": {}}))
        .await
        .expect(200);
    let secret = s.plugin_secret("hostile-crash").await;
    s.hook("hostile-crash", "ok", Some(&secret), json!({}))
        .await
        .expect(200);
    let cached: Vec<_> = std::fs::read_dir(s.data_dir.join("plugin-cache"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        cached.len() >= 3,
        "core-events, video-events and hostile-crash are cached: {cached:?}"
    );
    s.post("/api/plugins/video-events/disable", json!({}))
        .await
        .expect(200);

    s.restart().await;
    let list = s.get("/api/plugins").await.expect(200);
    for name in ["core-events", "video-events", "hostile-crash"] {
        assert_eq!(
            find(&list, name)["loadedFromCache"],
            true,
            "{name} came from the cache"
        );
    }
    assert_eq!(
        find(&list, "video-events")["enabled"],
        false,
        "settings survive a restart"
    );
    assert_eq!(
        find(&list, "hostile-crash")["origin"],
        "installed",
        "uploads are loaded from the plugins directory"
    );
    assert!(
        find(&list, "hostile-crash")["stats"]["calls"]
            .as_u64()
            .unwrap()
            >= 1,
        "statistics survive a restart"
    );
    assert_eq!(s.plugin_secret("hostile-crash").await, secret);
    s.stop().await;
}
