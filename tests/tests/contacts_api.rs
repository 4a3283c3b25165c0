//! The Mautic-compatible contacts API, end to end over HTTP, on both databases.

use magpie_tests::{Backend, TestServer, Value, both_backends, json};
use reqwest::Method;

both_backends!(
    create_get_upsert_edit_delete,
    bad_input_changes_nothing,
    authentication,
    batch_endpoints,
    tags_points_dnc_utm_and_activity,
    anonymous_until_identified,
    form_encoded_bodies_like_the_php_client,
    sub_resources_and_lists,
    totals_follow_identification_deletes_and_merges,
    concurrent_batches_behave_as_one_after_another,
    creation_events_read_and_page_with_the_stored_ones,
    every_contacts_activity,
    notes_companies_and_stages_apis,
    tags_and_stages_by_id,
    tags_ignore_case,
    entity_batches,
    identifiers_filters_and_methods,
);

/// The event types of an activity answer, newest first.
fn event_kinds(activity: &serde_json::Value) -> Vec<&str> {
    activity["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

async fn count(s: &TestServer) -> i64 {
    let r = s
        .get("/api/contacts?search=is:anonymous%20OR%20!is:anonymous&limit=1")
        .await
        .expect(200);
    r["total"].as_str().unwrap().parse().unwrap()
}

async fn create_get_upsert_edit_delete(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s.post("/api/contacts/new", json!({"firstname": "Ada", "lastname": "Lovelace", "email": "Ada@Example.org", "points": 5})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["contact"]["id"].as_i64().unwrap();
    assert_eq!(
        r.headers["location"],
        format!("/api/contacts/{id}").as_str()
    );
    let c = &r.body["contact"];
    assert_eq!(c["fields"]["core"]["email"]["value"], "Ada@Example.org");
    assert_eq!(c["fields"]["all"]["firstname"], "Ada");
    assert_eq!(c["points"], 5);
    assert!(c["dateIdentified"].is_string());
    assert_eq!(
        c["fields"]["personal"],
        json!([]),
        "empty groups are [] as in Mautic"
    );

    // The same email in another case updates the same contact (200, not 201).
    let r = s
        .post(
            "/api/contacts/new",
            json!({"email": "ada@example.ORG", "city": "London"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["contact"]["id"], id);
    assert_eq!(
        r.body["contact"]["fields"]["all"]["firstname"], "Ada",
        "an upsert keeps what it did not send"
    );
    assert_eq!(r.body["contact"]["fields"]["all"]["city"], "London");

    let got = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(got["contact"]["fields"]["all"]["city"], "London");

    // PATCH changes only what it sends; blanks are ignored unless overwriteWithBlank.
    let r = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"lastname": "Byron", "city": ""}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["fields"]["all"]["lastname"], "Byron");
    assert_eq!(r["contact"]["fields"]["all"]["city"], "London");
    // A client sending back the id it read (even another one): the path decides.
    let r = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"id": 999999, "position": "Countess"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["id"], id);
    assert_eq!(r["contact"]["fields"]["all"]["position"], "Countess");
    let r = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"city": "", "overwriteWithBlank": true}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["fields"]["all"]["city"], json!(null));

    // PUT replaces: fields not sent are cleared.
    let r = s
        .put(
            &format!("/api/contacts/{id}/edit"),
            json!({"email": "ada@example.org"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["fields"]["all"]["firstname"], json!(null));
    assert_eq!(r["contact"]["fields"]["all"]["email"], "ada@example.org");
    // PUT on an unknown id creates.
    let r = s
        .put(
            "/api/contacts/999999/edit",
            json!({"email": "new@example.org"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_id = r.body["contact"]["id"].as_i64().unwrap();
    assert_ne!(new_id, 999999);

    // PATCH on an unknown id is a 404 in Mautic's shape.
    let r = s
        .patch("/api/contacts/999999/edit", json!({"city": "x"}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_message(), "Item was not found.");
    assert_eq!(s.get("/api/contacts/abc").await.status, 404);

    let r = s
        .delete(&format!("/api/contacts/{id}/delete"))
        .await
        .expect(200);
    assert_eq!(r["contact"]["id"], json!(null));
    assert_eq!(r["contact"]["fields"]["all"]["email"], "ada@example.org");
    assert_eq!(s.get(&format!("/api/contacts/{id}")).await.status, 404);
    assert_eq!(
        s.delete(&format!("/api/contacts/{id}/delete")).await.status,
        404
    );
    s.stop().await;
}

async fn bad_input_changes_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s
        .create_contact(json!({"email": "keep@example.org", "firstname": "Keep"}))
        .await;
    let before = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    let n = count(&s).await;

    let r = s
        .post(
            "/api/contacts/new",
            json!({"email": "x@example.org", "favourite": 1, "shoe": 2}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.error_message().contains("favourite") && r.error_message().contains("shoe"),
        "{}",
        r.text
    );
    assert!(r.body["errors"][0]["details"]["favourite"].is_array());

    // Invalid values are 422 naming the field; a body that is not an object is 400.
    let cases = [
        (json!({"email": "not-an-email"}), 422, "email"),
        (
            json!({"email": "a@b.co", "website": "javascript:alert(1)"}),
            422,
            "website",
        ),
        (
            json!({"email": "a@b.co", "firstname": "x".repeat(1_000_000)}),
            422,
            "firstname",
        ),
        (
            json!({"email": "a@b.co", "firstname": "bell\u{7}"}),
            422,
            "firstname",
        ),
        (json!({"email": "a@b.co", "points": "lots"}), 422, "points"),
        (json!({"email": "a@b.co", "owner": 424242}), 422, "owner"),
        (json!({"email": "a@b.co", "stage": 424242}), 422, "stage"),
        (
            json!({"email": "a@b.co", "country": "Atlantis"}),
            422,
            "country",
        ),
        (
            json!({"email": "a@b.co", "tags": {"nested": true}}),
            422,
            "tags",
        ),
        (
            json!({"email": "a@b.co", "ipAddress": "300.1.1.1"}),
            422,
            "ipAddress",
        ),
        (json!(["not", "an", "object"]), 400, ""),
    ];
    for (body, status, field) in cases {
        let r = s.post("/api/contacts/new", body.clone()).await;
        let shown = body.to_string().chars().take(80).collect::<String>();
        assert_eq!(
            r.status,
            status,
            "{shown}: {}",
            r.text.chars().take(300).collect::<String>()
        );
        assert_eq!(
            r.body["errors"][0]["code"], status,
            "Mautic error shape: {shown}"
        );
        if !field.is_empty() {
            assert!(
                r.body["errors"][0]["details"][field].is_array(),
                "{shown}: {}",
                r.text.chars().take(300).collect::<String>()
            );
        }
    }
    let r = s
        .raw(
            Method::POST,
            "/api/contacts/new",
            "application/json",
            "{\"email\": ",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("malformed JSON"), "{}", r.text);
    let r = s
        .raw(
            Method::POST,
            "/api/contacts/new",
            "text/plain",
            "email=a@b.co",
        )
        .await;
    assert_eq!(r.status, 415);
    let huge = format!("{{\"firstname\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let r = s
        .raw(Method::POST, "/api/contacts/new", "application/json", huge)
        .await;
    assert_eq!(r.status, 413);
    assert!(r.body["errors"][0]["message"].is_string());
    // Hostile strings are stored as text, not executed.
    let hostile = "Robert'); DROP TABLE contacts;--";
    let hid = s
        .create_contact(json!({"email": "bobby@example.org", "lastname": hostile}))
        .await;
    assert_eq!(
        s.get(&format!("/api/contacts/{hid}")).await.expect(200)["contact"]["fields"]["all"]["lastname"],
        hostile
    );
    let r = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"email": "broken"}),
        )
        .await;
    assert_eq!(r.status, 422);
    // A do-not-contact body that is not an object; a path that is not UTF-8 (refused by
    // the router itself, still in Mautic's shape); form flags that are not flags.
    for body in ["[1]", "\"unsubscribe\"", "3", "true"] {
        let r = s
            .raw(
                Method::POST,
                &format!("/api/contacts/{id}/dnc/email/add"),
                "application/json",
                body,
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    // A write from a page of another site (a browser's form post riding on remembered
    // Basic credentials) is refused; from this site, or from a script, it is taken.
    let from = |origin: Option<&str>| {
        let mut req = s
            .client
            .post(s.url("/api/contacts/new"))
            .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("email=csrf%40example.org");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req
    };
    for origin in ["https://evil.example", "null"] {
        let r = s.send(from(Some(origin))).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text);
    }
    let r = s
        .send(from(None).header("sec-fetch-site", "cross-site"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(count(&s).await, n + 1, "nothing written");
    let own = s.base.replace("http://", "");
    let r = s.send(from(Some(&format!("http://{own}")))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s.send(from(None)).await;
    assert_eq!(r.status, 200, "the same contact again: {}", r.text);
    s.delete(&format!("/api/contacts/{}/delete", r.body["contact"]["id"]))
        .await
        .expect(200);
    let r = s.get("/api/contacts/%FF%FE").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["errors"][0]["message"].is_string(), "{}", r.text);
    for flag in [json!({}), json!("maybe"), json!(2)] {
        let r = s
            .post(
                "/api/forms/new",
                json!({"name": "F", "fields": [], "recordUtm": flag}),
            )
            .await;
        assert_eq!(r.status, 422, "{flag}: {}", r.text);
        assert!(r.error_message().contains("recordUtm"), "{}", r.text);
    }
    assert_eq!(s.get("/api/forms").await.expect(200)["total"], 0);

    assert_eq!(
        count(&s).await,
        n + 1,
        "only the hostile-but-valid contact was added"
    );
    let after = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(before["contact"]["fields"], after["contact"]["fields"]);
    assert_eq!(
        before["contact"]["doNotContact"],
        after["contact"]["doNotContact"]
    );
    s.stop().await;
}

async fn authentication(backend: Backend) {
    let s = TestServer::start(backend).await;
    let anon = s.send(s.client.get(s.url("/api/contacts"))).await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.body["errors"][0]["code"], 401);
    assert_eq!(
        anon.body["errors"][0]["type"], "access_denied",
        "as Mautic says it"
    );
    assert!(anon.headers.contains_key("www-authenticate"));
    let wrong = s
        .send(
            s.client
                .get(s.url("/api/contacts"))
                .basic_auth("admin", Some("wrong")),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let nobody = s
        .send(
            s.client
                .get(s.url("/api/contacts"))
                .basic_auth("nobody", Some("x")),
        )
        .await;
    assert_eq!(nobody.status, 401);
    let garbage = s
        .send(
            s.client
                .get(s.url("/api/contacts"))
                .header("authorization", "Basic !!!"),
        )
        .await;
    assert_eq!(garbage.status, 401);
    assert_eq!(
        s.send(s.client.get(s.url("/api/openapi.json")))
            .await
            .status,
        401
    );
    assert_eq!(s.send(s.client.get(s.url("/healthz"))).await.status, 200);
    let ok = s
        .send(
            s.client
                .get(s.url("/api/contacts"))
                .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, json!({"total": "0", "contacts": {}}));
    s.stop().await;
}

/// Batches sent at once (on SQLite written in one transaction by the save group) give the
/// result of writing them one after another: an email two batches share is one contact,
/// created by one and updated by the other; every answered id exists.
async fn concurrent_batches_behave_as_one_after_another(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Batch i holds emails 25·i … 25·i + 49: each overlaps the next by 25.
    let batch = |i: usize| {
        let items: Vec<_> = (25 * i..25 * i + 50)
            .map(|k| json!({"email": format!("c{k}@example.org"), "lastname": format!("Batch{i}")}))
            .collect();
        s.post("/api/contacts/batch/new", json!(items))
    };
    let answers = tokio::join!(
        batch(0),
        batch(1),
        batch(2),
        batch(3),
        batch(4),
        batch(5),
        batch(6),
        batch(7)
    );
    let answers = [
        answers.0, answers.1, answers.2, answers.3, answers.4, answers.5, answers.6, answers.7,
    ];
    let mut id_of_email = std::collections::HashMap::new();
    let mut created = 0;
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(r.status, 201, "batch {i}: {}", r.text);
        let codes = r.body["statusCodes"].as_array().unwrap();
        assert_eq!(codes.len(), 50);
        created += codes.iter().filter(|c| **c == 201).count();
        for (j, c) in r.body["contacts"].as_array().unwrap().iter().enumerate() {
            let email = format!("c{}@example.org", 25 * i + j);
            assert_eq!(c["fields"]["all"]["email"], email.as_str());
            let id = c["id"].as_i64().unwrap();
            let earlier = id_of_email.insert(email.clone(), id);
            assert!(
                earlier.is_none() || earlier == Some(id),
                "{email}: one contact, whichever batch came first"
            );
        }
    }
    assert_eq!(id_of_email.len(), 225);
    assert_eq!(
        created, 225,
        "each email created once, updated by the other batch"
    );
    assert_eq!(count(&s).await, 225);
    for (email, id) in &id_of_email {
        let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
        assert_eq!(c["contact"]["fields"]["all"]["email"], email.as_str());
    }
    s.stop().await;
}

async fn batch_endpoints(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .post(
            "/api/contacts/batch/new",
            json!([
                {"email": "one@example.org", "firstname": "One"},
                {"email": "bad"},
                {"email": "ONE@example.org", "lastname": "Again"},
                {"email": "two@example.org"}
            ]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["statusCodes"], json!([201, 422, 200, 201]));
    assert!(
        r.body["errors"]["1"]["message"]
            .as_str()
            .unwrap()
            .contains("email")
    );
    let one = &r.body["contacts"]["0"];
    assert_eq!(
        r.body["contacts"]["2"]["id"], one["id"],
        "a later item updates the contact an earlier one created"
    );
    assert_eq!(
        r.body["contacts"]["2"]["fields"]["all"]["lastname"],
        "Again"
    );
    assert_eq!(r.body["contacts"]["2"]["fields"]["all"]["firstname"], "One");
    let one_id = one["id"].as_i64().unwrap();
    let two_id = r.body["contacts"]["3"]["id"].as_i64().unwrap();

    let r = s
        .patch(
            "/api/contacts/batch/edit",
            json!([{"id": one_id, "city": "Paris"}, {"id": 999999, "city": "Nowhere"}, {"city": "no id"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["statusCodes"], json!([200, 404, 400]));
    // Indexes 0 … with no gap: a list, as Mautic's serializer writes it.
    assert_eq!(r.body["contacts"][0]["fields"]["all"]["city"], "Paris");
    assert_eq!(r.body["contacts"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["errors"]["1"]["code"], 404);

    let too_many: Vec<_> = (0..201)
        .map(|i| json!({"email": format!("c{i}@example.org")}))
        .collect();
    let r = s.post("/api/contacts/batch/new", json!(too_many)).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("A max of 200"), "{}", r.text);
    assert_eq!(count(&s).await, 2, "the oversized batch wrote nothing");
    assert_eq!(
        s.post("/api/contacts/batch/new", json!({"email": "x@y.z"}))
            .await
            .status,
        400
    );

    let r = s
        .delete(&format!(
            "/api/contacts/batch/delete?ids={one_id},{two_id},424242"
        ))
        .await
        .expect(200);
    // As in Mautic: the unknown id is an error at its index; the contacts are keyed by
    // theirs, a list when those run 0, 1 … with no gap.
    let deleted = r["contacts"].as_array().expect("indexes 0 and 1: a list");
    assert_eq!(deleted.len(), 2, "{r}");
    assert_eq!(deleted[0]["id"], one_id);
    assert_eq!(deleted[1]["id"], two_id);
    assert_eq!(r["errors"]["2"]["code"], 404, "{r}");
    assert_eq!(count(&s).await, 0);
    let three = s
        .create_contact(json!({"email": "three@example.org"}))
        .await;
    let r = s
        .delete(&format!("/api/contacts/batch/delete?ids=424242,{three}"))
        .await
        .expect(200);
    assert_eq!(
        r["contacts"]["1"]["id"], three,
        "a gap: keyed by index: {r}"
    );
    assert_eq!(r["errors"]["0"]["code"], 404, "{r}");
    assert_eq!(count(&s).await, 0);
    assert_eq!(
        s.delete("/api/contacts/batch/delete?ids=a,b").await.status,
        400
    );
    s.stop().await;
}

async fn tags_points_dnc_utm_and_activity(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s
        .create_contact(json!({"email": "t@example.org", "tags": ["vip", "new", "spaced  name"]}))
        .await;
    let c = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"tags": ["-new", "gold"]}),
        )
        .await
        .expect(200);
    let tags: Vec<&str> = c["contact"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["gold", "spaced name", "vip"]);
    let all_tags = s.get("/api/tags").await.expect(200);
    assert_eq!(all_tags["total"], 4);
    let r = s.post("/api/tags/new", json!({"tag": "fresh"})).await;
    assert_eq!(r.status, 201);
    let r = s.post("/api/tags/new", json!({"tag": "fresh"})).await;
    assert_eq!(r.status, 200, "an existing tag is returned with 200");
    assert_eq!(s.post("/api/tags/new", json!({})).await.status, 422);
    // A description is kept and answered, as Mautic's tags API does.
    let r = s
        .post(
            "/api/tags/new",
            json!({"tag": "described", "description": "Met at the fair"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["tag"]["description"], "Met at the fair");
    let listed = s.get("/api/tags?search=described").await.expect(200);
    let described = listed["tags"][0].clone();
    assert_eq!(described["description"], "Met at the fair", "{listed}");
    assert_eq!(
        s.post("/api/tags/new", json!({"tag": "x", "description": 5}))
            .await
            .status,
        422
    );

    assert_eq!(
        s.post(&format!("/api/contacts/{id}/points/plus/10"), json!({}))
            .await
            .expect(200),
        json!({"success": 1})
    );
    s.post(&format!("/api/contacts/{id}/points/minus/3"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        s.get(&format!("/api/contacts/{id}")).await.expect(200)["contact"]["points"],
        7
    );
    // Mautic's other two operators: 7 × 3 = 21, 21 / 4 = 5 (truncated, as PHP's (int)).
    for (op, n, want) in [("times", 3, 21), ("divide", 4, 5)] {
        s.post(&format!("/api/contacts/{id}/points/{op}/{n}"), json!({}))
            .await
            .expect(200);
        assert_eq!(
            s.get(&format!("/api/contacts/{id}")).await.expect(200)["contact"]["points"],
            want,
            "{op} {n}"
        );
    }
    for bad in ["divide/0", "power/2", "plus/1.5", "times/-2"] {
        assert_eq!(
            s.post(&format!("/api/contacts/{id}/points/{bad}"), json!({}))
                .await
                .status,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        s.post("/api/contacts/424242/points/plus/1", json!({}))
            .await
            .status,
        404
    );

    let r = s
        .post(
            &format!("/api/contacts/{id}/dnc/email/add"),
            json!({"reason": 2, "comments": "bounced"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["doNotContact"][0]["reason"], 2);
    assert_eq!(r["contact"]["doNotContact"][0]["channel"], "email");
    // The same record again changes nothing, and records no second event.
    s.post(
        &format!("/api/contacts/{id}/dnc/email/add"),
        json!({"reason": 2, "comments": "bounced"}),
    )
    .await
    .expect(200);
    let dnc_events = s
        .activity(id, "filters[includeEvents][]=lead.donotcontact")
        .await;
    assert_eq!(dnc_events["total"], 1, "{dnc_events}");
    let r = s
        .post(&format!("/api/contacts/{id}/dnc/email/remove"), json!({}))
        .await
        .expect(200);
    assert_eq!(r["recordFound"], true);
    assert_eq!(r["contact"]["doNotContact"], json!([]));

    let r = s
        .post(
            &format!("/api/contacts/{id}/utm/add"),
            json!({"utm_source": "newsletter", "utm_campaign": "spring", "query": "a=1"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["utmtags"][0]["utmSource"], "newsletter");
    // The PHP library's calls as its documentation writes them: a channelId sent as a
    // string (form-encoded bodies carry strings), Mautic's own UTM key names, a record
    // with no utm_* value.
    let r = s
        .post(
            &format!("/api/contacts/{id}/dnc/email/add"),
            json!({"reason": "1", "channelId": "26", "comments": "from the library"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["doNotContact"][0]["channelId"], 26, "{r}");
    s.post(&format!("/api/contacts/{id}/dnc/email/remove"), json!({}))
        .await
        .expect(200);
    let r = s
        .post(
            &format!("/api/contacts/{id}/utm/add"),
            json!({"utm_source": "library", "Useragent": "Mozilla/5.0", "remotehost": "192.0.2.1", "url": "https://example.org/"}),
        )
        .await
        .expect(200);
    let utm = r["contact"]["utmtags"].as_array().unwrap();
    let library = utm
        .iter()
        .find(|u| u["utmSource"] == "library")
        .expect("{r}");
    assert_eq!(library["userAgent"], "Mozilla/5.0");
    assert_eq!(library["remoteHost"], "192.0.2.1");
    let r = s
        .post(
            &format!("/api/contacts/{id}/utm/add"),
            json!({"url": "https://example.org/only-a-url"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["utmtags"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(
        s.post(&format!("/api/contacts/{id}/utm/add"), json!({}))
            .await
            .status,
        422,
        "a record needs a value"
    );
    // The user agent tags come with is one of the contact's devices, once however often
    // it comes (Mautic's PHP library tests this with an iPhone's).
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 10_0 like Mac OS X) AppleWebKit/602.1.50 (KHTML, like Gecko) Mobile/14A346";
    for _ in 0..2 {
        s.post(
            &format!("/api/contacts/{id}/utm/add"),
            json!({"utm_source": "phone", "useragent": iphone, "lead": id}),
        )
        .await
        .expect(200);
    }
    let r = s
        .post(
            &format!("/api/contacts/{id}/utm/add"),
            json!({"utm_source": "phone", "lead": id + 1000}),
        )
        .await;
    assert_eq!(r.status, 422, "a lead that is another contact: {}", r.text);
    let devices = s
        .get(&format!("/api/contacts/{id}/devices"))
        .await
        .expect(200);
    let kinds: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "smartphone").count(),
        1,
        "{devices}"
    );
    assert_eq!(
        devices["total"], 2,
        "the Mozilla/5.0 one and the iPhone: {devices}"
    );
    // Removing one set of tags by its id; an id that is not the contact's is a 404.
    let utm = s.get(&format!("/api/contacts/{id}")).await.expect(200)["contact"]["utmtags"].clone();
    let before = utm.as_array().unwrap().len();
    let first = utm[0]["id"].as_i64().unwrap();
    let utm_events = |a: Value| a["total"].as_i64().unwrap();
    let events_before = utm_events(
        s.activity(id, "filters[includeEvents][]=lead.utmtagsadded")
            .await,
    );
    let r = s
        .post(&format!("/api/contacts/{id}/utm/{first}/remove"), json!({}))
        .await
        .expect(200);
    let left = r["contact"]["utmtags"].as_array().unwrap();
    assert_eq!(left.len(), before - 1, "{r}");
    assert!(left.iter().all(|u| u["id"] != first), "{r}");
    assert_eq!(
        utm_events(
            s.activity(id, "filters[includeEvents][]=lead.utmtagsadded")
                .await
        ),
        events_before - 1,
        "its event goes with it"
    );
    assert_eq!(
        s.post(&format!("/api/contacts/{id}/utm/{first}/remove"), json!({}))
            .await
            .status,
        404
    );

    let note = s.post("/api/notes/new", json!({"lead": id, "text": "Called about <b>pricing</b>", "type": "call", "dateTime": "2024-01-02 10:00"})).await;
    assert_eq!(note.status, 201, "{}", note.text);

    let act = s.activity(id, "").await;
    let kinds = event_kinds(&act);
    for k in [
        "lead.create",
        "lead.apiadded",
        "lead.identified",
        "lead.tags",
        "point.gained",
        "lead.donotcontact",
        "lead.utmtagsadded",
        "lead.note",
    ] {
        assert!(kinds.contains(&k), "missing {k} in {kinds:?}");
    }
    assert_eq!(act["types"]["page.hit"], "Page hit");
    assert!(act["total"].as_i64().unwrap() >= 8);
    let only = s
        .activity(id, "filters[includeEvents][]=point.gained")
        .await;
    assert!(
        only["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"] == "point.gained")
    );
    assert_eq!(
        only["total"], 4,
        "plus 10, minus 3, times 3 and divide by 4"
    );
    // Newest first: the division took 21 to 5.
    assert_eq!(only["events"][0]["extra"]["delta"], -16, "{only}");
    let without = s
        .activity(id, "filters[excludeEvents][]=point.gained&limit=2&page=2")
        .await;
    assert!(
        without["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"] != "point.gained")
    );
    assert_eq!(without["page"], 2);
    assert_eq!(without["limit"], 2);
    let searched = s.activity(id, "filters[search]=pricing").await;
    assert_eq!(searched["total"], 1);
    assert_eq!(searched["events"][0]["event"], "lead.note");
    // The search reads values as written, not their JSON text, alike on both databases.
    s.post(
        "/api/notes/new",
        json!({"lead": id, "text": "He said \"hi\" from C:\\temp"}),
    )
    .await
    .expect(201);
    for (text, want) in [
        ("said%20%22hi%22", 1),
        ("C%3A%5Ctemp", 1),
        ("note_id", 0),
        ("%22source%22", 0),
    ] {
        let found = s.activity(id, &format!("filters[search]={text}")).await;
        assert_eq!(found["total"], want, "{text}: {found}");
    }
    s.stop().await;
}

async fn anonymous_until_identified(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_contact(json!({"city": "Lyon"})).await;
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(c["contact"]["dateIdentified"], json!(null));
    let list = s.get("/api/contacts").await.expect(200);
    assert_eq!(
        list["total"], "0",
        "anonymous contacts are hidden by default"
    );
    let anon = s.get("/api/contacts?search=is:anonymous").await.expect(200);
    assert_eq!(anon["total"], "1");
    let c = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"company": "Acme"}),
        )
        .await
        .expect(200);
    assert!(c["contact"]["dateIdentified"].is_string());
    let act = s
        .activity(id, "filters[includeEvents][]=lead.identified")
        .await;
    assert_eq!(act["total"], 1);
    s.stop().await;
}

async fn form_encoded_bodies_like_the_php_client(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .raw(
            Method::POST,
            "/api/contacts/new",
            "application/x-www-form-urlencoded",
            "firstname=Jean&email=jean%40example.org&tags[]=a&tags[]=b&overwriteWithBlank=1",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["contact"]["fields"]["all"]["firstname"], "Jean");
    assert_eq!(r.body["contact"]["tags"].as_array().unwrap().len(), 2);
    let id = r.body["contact"]["id"].as_i64().unwrap();
    // Bytes that are not UTF-8 are refused, as in JSON, and change nothing.
    let r = s
        .raw(
            Method::PATCH,
            &format!("/api/contacts/{id}/edit"),
            "application/x-www-form-urlencoded",
            "firstname=%FF%FE",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(c["contact"]["fields"]["all"]["firstname"], "Jean");

    // What PHP clients send: DATE_ISO8601 offsets, `channelId`, reason 0 to lift a
    // do-not-contact; a date field keeps the date as written.
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Born", "alias": "born", "type": "date"}),
    )
    .await
    .expect(201);
    let r = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"lastActive": "2024-05-01T14:00:00+0200", "born": "1990-02-28T23:30:00-05:00",
                   "doNotContact": [{"channel": "email", "reason": 1, "channelId": "7"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.body["contact"];
    assert_eq!(c["lastActive"], "2024-05-01T12:00:00+00:00", "{c}");
    assert_eq!(c["fields"]["all"]["born"], "1990-02-28");
    assert_eq!(c["doNotContact"][0]["channelId"], 7, "{c}");
    let r = s
        .patch(
            &format!("/api/contacts/{id}/edit"),
            json!({"doNotContact": [{"channel": "email", "reason": 0}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["contact"]["doNotContact"], json!([]));
    s.stop().await;
}

async fn sub_resources_and_lists(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_contact(json!({"email": "sub@example.org"})).await;
    let fields = s.get("/api/contacts/list/fields").await.expect(200);
    assert_eq!(fields["6"]["alias"], "email");
    let owners = s.get("/api/contacts/list/owners").await.expect(200);
    assert_eq!(owners[0]["id"], 1);
    assert_eq!(
        s.get("/api/contacts/list/segments").await.expect(200),
        json!([]),
        "no segments to add contacts to (not a contact named 'list')"
    );
    assert_eq!(
        s.get(&format!("/api/contacts/{id}/devices"))
            .await
            .expect(200)["total"],
        0
    );
    assert_eq!(
        s.get(&format!("/api/contacts/{id}/companies"))
            .await
            .expect(200)["companies"],
        json!([])
    );
    // None yet, written as PHP writes an empty array.
    assert_eq!(
        s.get(&format!("/api/contacts/{id}/campaigns"))
            .await
            .expect(200),
        json!({"total": 0, "campaigns": []})
    );
    assert_eq!(
        s.get(&format!("/api/contacts/{id}/segments"))
            .await
            .expect(200),
        json!({"total": 0, "lists": []})
    );
    assert_eq!(s.get("/api/contacts/424242/devices").await.status, 404);
    let api = s.get("/api/openapi.json").await.expect(200);
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    assert!(
        api["paths"]["/api/contacts"].is_object(),
        "the contacts list is documented"
    );
    // Operation ids are unique (code generators refuse a document where they repeat), and
    // the methods and bodies the server takes besides the annotated ones are there.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "{id} repeats ({method} {path})");
            }
        }
    }
    assert!(ids.len() > 90, "{}", ids.len());
    assert!(api["paths"]["/api/contacts/batch/edit"]["put"].is_object());
    assert!(api["paths"]["/plugins/{name}/hook"]["post"].is_object());
    assert!(
        api["paths"]["/api/imports"]["post"]["requestBody"]["content"]["multipart/form-data"]
            .is_object()
    );
    assert_eq!(s.get("/api/nope").await.status, 404);
    s.stop().await;
}

async fn totals_follow_identification_deletes_and_merges(backend: Backend) {
    let s = TestServer::start(backend).await;
    let total = |q: &'static str| {
        let s = &s;
        async move {
            s.get(&format!("/api/contacts?search={q}"))
                .await
                .expect(200)["total"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        }
    };
    let anon = s
        .create_contact(json!({"city": "Oslo", "tags": ["t"]}))
        .await;
    let known = s
        .create_contact(json!({"email": "k@example.org", "tags": ["t"]}))
        .await;
    assert_eq!((total("").await, total("is:anonymous").await), (1, 1));
    assert_eq!(
        total("tag:t").await,
        1,
        "the anonymous contact's tag is not counted"
    );
    assert_eq!(total("is:anonymous%20tag:t").await, 1);
    assert_eq!(total("osl").await, 0, "free text hides anonymous visitors");
    assert_eq!(
        total("is:anonymous%20osl").await,
        1,
        "and finds them when asked"
    );
    s.patch(
        &format!("/api/contacts/{anon}/edit"),
        json!({"firstname": "Ola"}),
    )
    .await
    .expect(200);
    assert_eq!(
        (total("").await, total("is:anonymous").await),
        (2, 0),
        "identification moves the contact between the totals"
    );
    assert_eq!(total("tag:t").await, 2);
    assert_eq!(total("osl").await, 1);
    let other = s
        .create_contact(json!({"city": "Bergen", "tags": ["u"]}))
        .await;
    s.post(&format!("/api/contacts/{known}/merge/{other}"), json!({}))
        .await
        .expect(200);
    assert_eq!((total("").await, total("is:anonymous").await), (2, 0));
    assert_eq!(
        total("tag:u").await,
        1,
        "a merged-in tag belongs to a known contact now"
    );
    s.delete(&format!("/api/contacts/{known}/delete"))
        .await
        .expect(200);
    assert_eq!((total("").await, total("is:anonymous").await), (1, 0));
    assert_eq!(total("tag:t").await, 1);
    s.stop().await;
}

/// `lead.create`, `lead.apiadded` and `lead.identified` come from the contact's row, not
/// from stored events: they must count, filter, order and page exactly like stored ones.
/// `GET /api/contacts/activity`: every contact's stored events (Mautic's all-contacts
/// activity, which the PHP library's `getActivity()` reads), filtered, ordered and paged.
async fn every_contacts_activity(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ada = s.create_contact(json!({"email": "ada@example.org"})).await;
    let bob = s.create_contact(json!({"email": "bob@example.org"})).await;
    for (who, at) in [
        (ada, "2001-01-01 10:00"),
        (bob, "2001-06-01 10:00"),
        (bob, "2099-01-01 10:00"),
    ] {
        s.post(
            "/api/notes/new",
            json!({"lead": who, "text": format!("Café note {at}"), "dateTime": at}),
        )
        .await
        .expect(201);
    }
    s.post(
        &format!("/api/contacts/{ada}/dnc/email/add"),
        json!({"reason": 3}),
    )
    .await
    .expect(200);

    let all = s.get("/api/contacts/activity?limit=100").await.expect(200);
    let kinds = event_kinds(&all);
    // The events a contact's own row implies (created, identified) are not in it, as in
    // Mautic, which adds them only for one contact's timeline.
    assert_eq!(
        kinds,
        vec!["lead.note", "lead.donotcontact", "lead.note", "lead.note"],
        "newest first: {all}"
    );
    assert_eq!(all["total"], 4);
    let owners: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["contactId"].as_i64().unwrap())
        .collect();
    assert_eq!(owners, vec![bob, ada, bob, ada]);
    assert_eq!(all["types"]["lead.note"], "Note");
    assert_eq!(all["order"], json!(["timestamp", "DESC"]));

    // Mautic's filters, as the PHP library sends them.
    let only = s
        .get("/api/contacts/activity?filters[includeEvents][]=lead.donotcontact")
        .await
        .expect(200);
    assert_eq!(event_kinds(&only), vec!["lead.donotcontact"]);
    assert_eq!(only["events"][0]["contactId"], ada);
    // Several types are read type by type and merged in time order.
    let notes_and_dnc = "filters[includeEvents][]=lead.note&filters[includeEvents][]=lead.donotcontact&filters[includeEvents][]=lead.note";
    let both = s
        .get(&format!("/api/contacts/activity?{notes_and_dnc}&limit=100"))
        .await
        .expect(200);
    assert_eq!(event_kinds(&both), kinds);
    assert_eq!(both["total"], 4);
    let second = s
        .get(&format!(
            "/api/contacts/activity?{notes_and_dnc}&limit=2&page=2"
        ))
        .await
        .expect(200);
    assert_eq!(
        second["events"],
        json!(all["events"].as_array().unwrap()[2..])
    );
    let without = s
        .get("/api/contacts/activity?filters[excludeEvents][]=lead.note")
        .await
        .expect(200);
    assert_eq!(without["total"], 1);
    let found = s
        .get("/api/contacts/activity?filters[search]=CAFÉ%20NOTE%202001")
        .await
        .expect(200);
    assert_eq!(found["total"], 2, "{found}");
    let range = s
        .get("/api/contacts/activity?filters[dateFrom]=2001-03-01%2000:00:00&filters[dateTo]=2002-01-01%2000:00:00")
        .await
        .expect(200);
    assert_eq!(range["total"], 1, "{range}");
    assert_eq!(range["events"][0]["contactId"], bob);
    assert_eq!(range["filters"]["dateFrom"], "2001-03-01T00:00:00+00:00");

    // Oldest first, and pages of one that read the whole list in that order.
    let oldest = s
        .get("/api/contacts/activity?order[0]=timestamp&order[1]=ASC&limit=100")
        .await
        .expect(200);
    let ids = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventId"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut newest = ids(&all);
    newest.reverse();
    assert_eq!(ids(&oldest), newest);
    let mut paged = Vec::new();
    for page in 1..=4 {
        let r = s
            .get(&format!(
                "/api/contacts/activity?order[0]=timestamp&order[1]=ASC&limit=1&page={page}"
            ))
            .await
            .expect(200);
        assert_eq!(r["maxPages"], 4);
        paged.extend(ids(&r));
    }
    assert_eq!(paged, newest);

    // Bad input is a 400 naming it; no credentials, a 401.
    for (query, says) in [
        ("filters[dateFrom]=yesterday-ish", "filters[dateFrom]"),
        ("filters[dateTo][]=2001-01-01", "filters[dateTo]"),
        ("filters=notes", "filters[search]"),
        ("filters[includeEvent][]=lead.note", "filters[includeEvent]"),
        (
            "filters[includeEvents][0][x]=lead.note",
            "filters[includeEvents]",
        ),
        ("filters[search][]=note", "filters[search]"),
        ("order[1]=sideways", "order[1]"),
        ("page=x", "page"),
    ] {
        let r = s.get(&format!("/api/contacts/activity?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert!(r.error_message().contains(says), "{query}: {}", r.text);
    }
    let anonymous = reqwest::Client::new()
        .get(s.url("/api/contacts/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    s.stop().await;
}

async fn creation_events_read_and_page_with_the_stored_ones(backend: Backend) {
    let s = TestServer::start(backend).await;
    let anonymous = s.create_contact(json!({"city": "Lyon"})).await;
    let known = s
        .create_contact(json!({"email": "grace@example.org", "tags": ["vip"]}))
        .await;
    // Notes dated before and after the creation, and a points change, around the
    // derived events.
    for at in ["2001-01-01 10:00", "2099-01-01 10:00"] {
        s.post(
            "/api/notes/new",
            json!({"lead": known, "text": format!("note {at}"), "dateTime": at}),
        )
        .await
        .expect(201);
    }
    s.post(&format!("/api/contacts/{known}/points/plus/5"), json!({}))
        .await
        .expect(200);

    let all = s.activity(known, "limit=100").await;
    let events = all["events"].as_array().unwrap();
    let kinds = event_kinds(&all);
    for k in ["lead.create", "lead.apiadded", "lead.identified"] {
        assert_eq!(
            kinds.iter().filter(|x| **x == k).count(),
            1,
            "{k} once in {kinds:?}"
        );
    }
    assert_eq!(all["total"].as_u64().unwrap() as usize, events.len());
    assert_eq!(
        kinds.first(),
        Some(&"lead.note"),
        "the 2099 note is newest: {kinds:?}"
    );
    assert_eq!(
        kinds.last(),
        Some(&"lead.note"),
        "the 2001 note is oldest: {kinds:?}"
    );
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        at("lead.identified") < at("lead.apiadded") && at("lead.apiadded") < at("lead.create"),
        "newest first, creation last within its millisecond: {kinds:?}"
    );
    let stamps: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");
    let created = &events[at("lead.create")];
    assert_eq!(created["extra"]["source"], "api");
    assert_eq!(created["eventId"], format!("lead.create{known}"));
    assert_eq!(created["contactId"], known);
    assert_eq!(events[at("lead.identified")]["extra"]["source"], "api");
    assert!(events[at("lead.apiadded")]["extra"]["user"].is_i64());
    assert_eq!(all["types"]["lead.create"], "Contact created");

    // Pages of two, one after another, are the whole list in order.
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    let mut paged = Vec::new();
    for page in 1..=ids.len().div_ceil(2) {
        let p = s.activity(known, &format!("limit=2&page={page}")).await;
        for e in p["events"].as_array().unwrap() {
            paged.push(e["eventId"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(paged, ids);
    // Oldest first (Mautic's `order`), paged the same way: the same list reversed.
    let mut oldest_first = Vec::new();
    for page in 1..=ids.len().div_ceil(2) {
        let p = s
            .activity(
                known,
                &format!("order[0]=timestamp&order[1]=ASC&limit=2&page={page}"),
            )
            .await;
        assert_eq!(p["order"], json!(["timestamp", "ASC"]));
        for e in p["events"].as_array().unwrap() {
            oldest_first.push(e["eventId"].as_str().unwrap().to_owned());
        }
    }
    let mut reversed = ids.clone();
    reversed.reverse();
    assert_eq!(oldest_first, reversed);
    // Mautic's PHP library sends `order[0]=` (empty) and `order[1]=ASC` by default.
    let php_default = s
        .activity(
            known,
            "filters[search]=&order[0]=&order[1]=ASC&page=1&limit=100",
        )
        .await;
    assert_eq!(php_default["order"], json!(["timestamp", "ASC"]));
    assert_eq!(php_default["events"][0]["eventId"], *reversed[0]);
    // By label, then newest first.
    let by_label = s
        .activity(known, "order[0]=eventLabel&order[1]=ASC&limit=100")
        .await;
    let labels: Vec<&str> = by_label["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventLabel"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), ids.len());
    assert!(labels.windows(2).all(|w| w[0] <= w[1]), "{labels:?}");
    assert!(labels.first() != labels.last(), "{labels:?}");
    let plain = s.activity(known, "order=timestamp").await;
    assert_eq!(plain["order"], json!(["timestamp", "DESC"]));
    for bad in ["order[0]=colour", "order[0]=timestamp&order[1]=sideways"] {
        let r = s
            .get(&format!("/api/contacts/{known}/activity?{bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains("order"), "{}", r.text);
    }

    // Filters apply to derived events as to stored ones.
    let only = |q: &'static str| s.activity(known, q);
    let created_only = only("filters[includeEvents][]=lead.create").await;
    assert_eq!(created_only["total"], 1);
    assert_eq!(created_only["events"][0]["event"], "lead.create");
    let without =
        only("filters[excludeEvents][]=lead.create&filters[excludeEvents][]=lead.apiadded").await;
    assert_eq!(
        without["total"].as_u64().unwrap() as usize,
        events.len() - 2
    );
    let old = only("filters[dateTo]=2050-01-01").await;
    assert!(
        old["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "lead.create"),
        "{old}"
    );
    let future = only("filters[dateFrom]=2050-01-01").await;
    assert_eq!(future["total"], 1, "only the 2099 note: {future}");

    // Identified later: the event is at the identification, by the channel that did it.
    s.patch(
        &format!("/api/contacts/{anonymous}/edit"),
        json!({"firstname": "Ada"}),
    )
    .await
    .expect(200);
    let later = s.activity(anonymous, "").await;
    let kinds = event_kinds(&later);
    assert_eq!(
        kinds.iter().filter(|k| **k == "lead.identified").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"lead.create"), "{kinds:?}");
    s.stop().await;
}

/// The notes, companies and stages APIs a Mautic client uses beside contacts: list,
/// search, get, edit, delete, and linking contacts; each change shows where it should.
async fn notes_companies_and_stages_apis(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s
        .create_contact(json!({"email": "nora@example.org", "firstname": "Nora"}))
        .await;
    let other = s.create_contact(json!({"email": "otto@example.org"})).await;

    // Notes.
    let note = s
        .post(
            "/api/notes/new",
            json!({"lead": c, "text": "Called about <b>pricing</b>", "type": "call", "dateTime": "2024-05-01 10:00:00"}),
        )
        .await
        .expect(201)["note"]
        .clone();
    let note_id = note["id"].as_i64().unwrap();
    assert_eq!(note["lead"]["id"], c);
    s.post(
        "/api/notes/new",
        json!({"lead": other, "text": "Sent the brochure", "type": "email"}),
    )
    .await
    .expect(201);
    let got = s.get(&format!("/api/notes/{note_id}")).await.expect(200);
    assert_eq!(got["note"]["text"], "Called about <b>pricing</b>");
    assert_eq!(got["note"]["type"], "call");
    assert_eq!(got["note"]["dateTime"], "2024-05-01T10:00:00+00:00");
    let all = s.get("/api/notes").await.expect(200);
    assert_eq!(all["total"], 2, "{all}");
    let calls = s.get("/api/notes?search=type:call").await.expect(200);
    assert_eq!(calls["total"], 1, "{calls}");
    assert_eq!(calls["notes"][0]["id"], note_id);
    let found = s.get("/api/notes?search=brochure").await.expect(200);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["notes"][0]["lead"]["id"], other);
    let by_id = s
        .get(&format!("/api/notes?search=ids:{note_id}"))
        .await
        .expect(200);
    assert_eq!(by_id["total"], 1, "{by_id}");
    assert_eq!(by_id["notes"][0]["id"], note_id);
    let oldest = s
        .get("/api/notes?orderBy=id&orderByDir=asc&limit=1")
        .await
        .expect(200);
    assert_eq!(oldest["notes"][0]["id"], note_id, "{oldest}");
    let edited = s
        .patch(
            &format!("/api/notes/{note_id}/edit"),
            json!({"text": "Called back", "type": "meeting"}),
        )
        .await
        .expect(200);
    assert_eq!(edited["note"]["text"], "Called back");
    assert_eq!(edited["note"]["type"], "meeting");
    // A client sends back the note it read: the read-only keys are ignored.
    let mut back = edited["note"].clone();
    back["text"] = json!("Called back twice");
    let r = s
        .patch(&format!("/api/notes/{note_id}/edit"), back)
        .await
        .expect(200);
    assert_eq!(r["note"]["text"], "Called back twice");
    // PUT on an unknown id creates the note (201), as in Mautic.
    let r = s
        .put(
            "/api/notes/999999/edit",
            json!({"lead": c, "text": "Made by PUT", "type": "general"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let put_note = r.body["note"]["id"].as_i64().unwrap();
    assert_ne!(put_note, 999999);
    s.delete(&format!("/api/notes/{put_note}/delete"))
        .await
        .expect(200);
    let r = s
        .patch(
            &format!("/api/notes/{note_id}/edit"),
            json!({"type": "fax"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        s.get(&format!("/api/notes/{note_id}")).await.expect(200)["note"]["type"],
        "meeting",
        "a refused edit changes nothing"
    );
    // PUT on a note that exists replaces it, as Mautic's form does: what the body leaves
    // out returns to a new note's value, and the text cannot be left out.
    let r = s
        .put(
            &format!("/api/notes/{note_id}/edit"),
            json!({"type": "call"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("text"), "{}", r.text);
    let kept = s.get(&format!("/api/notes/{note_id}")).await.expect(200);
    assert_eq!(
        kept["note"]["type"], "meeting",
        "a refused PUT changes nothing"
    );
    assert_eq!(kept["note"]["dateTime"], "2024-05-01T10:00:00+00:00");
    let replaced = s
        .put(
            &format!("/api/notes/{note_id}/edit"),
            json!({"text": "Replaced"}),
        )
        .await
        .expect(200);
    assert_eq!(replaced["note"]["text"], "Replaced", "{replaced}");
    assert_eq!(replaced["note"]["type"], "general", "{replaced}");
    assert!(replaced["note"]["dateTime"].is_null(), "{replaced}");
    assert_eq!(replaced["note"]["lead"]["id"], c, "the contact stays");
    let r = s
        .post("/api/notes/new", json!({"lead": 999999, "text": "x"}))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let notes_of =
        |a: &serde_json::Value| event_kinds(a).iter().filter(|k| **k == "lead.note").count();
    assert_eq!(notes_of(&s.activity(c, "").await), 1);
    let deleted = s
        .delete(&format!("/api/notes/{note_id}/delete"))
        .await
        .expect(200);
    assert!(
        deleted["note"]
            .get("id")
            .is_some_and(serde_json::Value::is_null),
        "{deleted}"
    );
    assert_eq!(s.get(&format!("/api/notes/{note_id}")).await.status, 404);
    assert_eq!(
        notes_of(&s.activity(c, "").await),
        0,
        "gone from the timeline"
    );
    assert_eq!(s.get("/api/notes").await.expect(200)["total"], 1);

    // Companies.
    let company = s
        .post("/api/companies/new", json!({"companyname": "Acme Rockets"}))
        .await
        .expect(201)["company"]["id"]
        .as_i64()
        .unwrap();
    let edited = s
        .patch(
            &format!("/api/companies/{company}/edit"),
            json!({"companycity": "Berlin"}),
        )
        .await
        .expect(200);
    assert_eq!(edited["company"]["fields"]["all"]["companycity"], "Berlin");
    assert_eq!(
        edited["company"]["fields"]["all"]["companyname"], "Acme Rockets",
        "an edit keeps what it did not send"
    );
    // PUT on an unknown id creates the company (201), as in Mautic.
    let r = s
        .put(
            "/api/companies/999999/edit",
            json!({"companyname": "Put Industries"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["company"]["fields"]["all"]["companyname"],
        "Put Industries"
    );
    // PUT on a company that exists replaces it, as Mautic's form does: a field it leaves
    // out is cleared, and the name cannot be left out.
    let put_company = r.body["company"]["id"].as_i64().unwrap();
    let put_path = format!("/api/companies/{put_company}/edit");
    s.patch(&put_path, json!({"companycity": "Oslo"}))
        .await
        .expect(200);
    let r = s.put(&put_path, json!({"companycountry": "Norway"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let kept = s
        .get(&format!("/api/companies/{put_company}"))
        .await
        .expect(200);
    assert_eq!(
        kept["company"]["fields"]["all"]["companycity"], "Oslo",
        "a refused PUT changes nothing"
    );
    let r = s
        .put(
            &put_path,
            json!({"companyname": "Put Industries", "companycountry": "Norway"}),
        )
        .await
        .expect(200);
    let all = &r["company"]["fields"]["all"];
    assert!(all["companycity"].is_null(), "{all}");
    assert_eq!(all["companycountry"], "Norway", "{all}");
    // `companyname` and `name` are one field: the last one given counts.
    let r = s
        .patch(
            &put_path,
            json!({"companyname": "Put Industries AS", "name": "Put Industries"}),
        )
        .await
        .expect(200);
    assert_eq!(
        r["company"]["fields"]["all"]["companyname"],
        "Put Industries"
    );
    let list = s.get("/api/companies?search=rockets").await.expect(200);
    assert_eq!(list["total"], "1", "{list}");
    let by_id = s
        .get(&format!("/api/companies?search=ids:{company}"))
        .await
        .expect(200);
    assert_eq!(by_id["total"], "1", "{by_id}");
    assert!(
        by_id["companies"][company.to_string()].is_object(),
        "{by_id}"
    );
    let last = s
        .get("/api/companies?orderBy=name&orderByDir=desc&limit=1")
        .await
        .expect(200);
    assert_eq!(last["total"], "2", "{last}");
    let names: Vec<&str> = last["companies"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["fields"]["all"]["companyname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Put Industries"], "{last}");
    let link = |action: &str| format!("/api/companies/{company}/contact/{c}/{action}");
    s.post(&link("add"), json!({})).await.expect(200);
    let of = s
        .get(&format!("/api/contacts/{c}/companies"))
        .await
        .expect(200);
    assert_eq!(of["companies"][0]["companyname"], "Acme Rockets", "{of}");
    s.post(&link("remove"), json!({})).await.expect(200);
    let of = s
        .get(&format!("/api/contacts/{c}/companies"))
        .await
        .expect(200);
    assert_eq!(of["companies"].as_array().map(Vec::len), Some(0), "{of}");
    assert_eq!(s.post(&link("sideways"), json!({})).await.status, 404);
    assert_eq!(
        s.post(
            &format!("/api/companies/{company}/contact/999999/add"),
            json!({})
        )
        .await
        .status,
        404
    );
    s.delete(&format!("/api/companies/{company}/delete"))
        .await
        .expect(200);
    assert_eq!(
        s.get(&format!("/api/companies/{company}")).await.status,
        404
    );

    // Stages.
    let stage = s
        .post("/api/stages/new", json!({"name": "Customer"}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    s.post(&format!("/api/stages/{stage}/contact/{c}/add"), json!({}))
        .await
        .expect(200);
    let got = s.get(&format!("/api/contacts/{c}")).await.expect(200);
    assert_eq!(got["contact"]["stage"]["name"], "Customer");
    assert!(event_kinds(&s.activity(c, "").await).contains(&"stage.changed"));
    s.post(
        &format!("/api/stages/{stage}/contact/{c}/remove"),
        json!({}),
    )
    .await
    .expect(200);
    let got = s.get(&format!("/api/contacts/{c}")).await.expect(200);
    assert!(
        got["contact"]
            .get("stage")
            .is_some_and(serde_json::Value::is_null),
        "{got}"
    );
    assert_eq!(
        s.post(&format!("/api/stages/999999/contact/{c}/add"), json!({}))
            .await
            .status,
        404
    );
    s.stop().await;
}

/// Tag names ignore case, as in Mautic: `VIP` is the existing `vip` when adding, removing,
/// creating through the tags API or within one batch, and the tag keeps its first spelling.
async fn tags_ignore_case(backend: Backend) {
    let s = TestServer::start(backend).await;
    let tags_of = |c: &Value| -> Vec<String> {
        c["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag"].as_str().unwrap().to_owned())
            .collect()
    };
    let a = s
        .post(
            "/api/contacts/new",
            json!({"email": "a@tags.example", "tags": ["vip"]}),
        )
        .await
        .expect(201);
    let b = s
        .post(
            "/api/contacts/new",
            json!({"email": "b@tags.example", "tags": ["VIP", "Été", "ÉTÉ"]}),
        )
        .await
        .expect(201);
    assert_eq!(tags_of(&b["contact"]), vec!["vip", "Été"], "{b}");
    let vip_id = a["contact"]["tags"][0]["id"].clone();
    assert_eq!(b["contact"]["tags"][0]["id"], vip_id);
    let b_id = b["contact"]["id"].as_i64().unwrap();
    // Adding a spelling it has changes nothing; removing any spelling removes it.
    let edited = s
        .patch(
            &format!("/api/contacts/{b_id}/edit"),
            json!({"tags": ["Vip", "-été"]}),
        )
        .await
        .expect(200);
    assert_eq!(tags_of(&edited["contact"]), vec!["vip"], "{edited}");
    let batch = s
        .post(
            "/api/contacts/batch/new",
            json!([{"email": "c@tags.example", "tags": ["Summer"]},
                   {"email": "d@tags.example", "tags": ["SUMMER"]}]),
        )
        .await
        .expect(201);
    assert_eq!(tags_of(&batch["contacts"][0]), vec!["Summer"]);
    assert_eq!(tags_of(&batch["contacts"][1]), vec!["Summer"]);
    let created = s.post("/api/tags/new", json!({"tag": "summer"})).await;
    assert_eq!(created.status, 200, "the existing tag: {}", created.text);
    assert_eq!(created.body["tag"]["tag"], "Summer");
    let all = s.get("/api/tags?limit=100").await.expect(200);
    assert_eq!(all["total"], 3, "vip, Été, Summer: {all}");
    let found = s.get("/api/contacts?search=tag:VIP").await.expect(200);
    assert_eq!(found["total"], "2", "{found}");
    // Spellings of a new tag created at once by concurrent requests make one tag.
    let spellings = ["Race", "RACE", "race", "rAcE"];
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (client, url) = (s.client.clone(), s.url("/api/contacts/new"));
        let body = json!({"email": format!("race{i}@tags.example"), "tags": [spellings[i % 4]]});
        requests.spawn(async move {
            let r = client
                .post(url)
                .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 201);
    }
    let raced = s.get("/api/tags?search=race").await.expect(200);
    assert_eq!(raced["total"], 1, "{raced}");
    s.stop().await;
}

/// Tags and stages as Mautic's API has them: lists in order, and get, edit (PATCH
/// partial, PUT replacing or creating) and delete by id.
async fn tags_and_stages_by_id(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s
        .create_contact(json!({"email": "tagged@example.org", "tags": ["vip", "lead"]}))
        .await;
    let tags = s.get("/api/tags").await.expect(200);
    assert_eq!(tags["total"], 2, "{tags}");
    let names: Vec<&str> = tags["tags"]
        .as_array()
        .expect("a list, as Mautic's paginated entities")
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lead", "vip"]);
    let vip = tags["tags"][1]["id"].as_i64().unwrap();
    let lead = tags["tags"][0]["id"].as_i64().unwrap();
    assert_eq!(
        s.get(&format!("/api/tags/{vip}")).await.expect(200),
        json!({"tag": {"id": vip, "tag": "vip", "description": null}})
    );
    assert_eq!(s.get("/api/tags/999999").await.status, 404);
    assert_eq!(s.get("/api/tags/abc").await.status, 404);

    // PATCH renames: the contact keeps the tag under its new name, and search finds it.
    let r = s
        .patch(
            &format!("/api/tags/{vip}/edit"),
            json!({"tag": "gold", "description": "Best customers"}),
        )
        .await
        .expect(200);
    assert_eq!(r["tag"]["tag"], "gold");
    let got = s.get(&format!("/api/contacts/{c}")).await.expect(200);
    let on_contact: Vec<&str> = got["contact"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(on_contact, ["gold", "lead"], "{got}");
    let found = s.get("/api/contacts?search=tag:gold").await.expect(200);
    assert_eq!(found["total"], "1", "{found}");
    // A PATCH without a description keeps it; a PUT without one clears it.
    let r = s
        .patch(&format!("/api/tags/{vip}/edit"), json!({"tag": "gold"}))
        .await
        .expect(200);
    assert_eq!(r["tag"]["description"], "Best customers");
    let r = s
        .put(&format!("/api/tags/{vip}/edit"), json!({"tag": "gold"}))
        .await
        .expect(200);
    assert!(r["tag"]["description"].is_null(), "{r}");
    // Renaming onto another tag's name, unknown keys and wrong types change nothing.
    for (body, key) in [
        (json!({"tag": "lead"}), "tag"),
        (json!({"tag": "x", "colour": "red"}), "colour"),
        (json!({"tag": 5}), "tag"),
        (json!({"tag": ""}), "tag"),
    ] {
        let r = s.patch(&format!("/api/tags/{vip}/edit"), body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains(key), "{}", r.text);
    }
    assert_eq!(
        s.patch("/api/tags/999999/edit", json!({"tag": "x"}))
            .await
            .status,
        404
    );
    assert_eq!(
        s.get(&format!("/api/tags/{vip}")).await.expect(200)["tag"]["tag"],
        "gold"
    );
    // PUT on an unknown id creates (201).
    let r = s
        .put("/api/tags/999999/edit", json!({"tag": "fresh"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["tag"]["tag"], "fresh");
    // DELETE: the tag leaves the contact.
    let r = s
        .delete(&format!("/api/tags/{lead}/delete"))
        .await
        .expect(200);
    assert_eq!(r["tag"]["tag"], "lead");
    assert_eq!(s.get(&format!("/api/tags/{lead}")).await.status, 404);
    assert_eq!(
        s.delete(&format!("/api/tags/{lead}/delete")).await.status,
        404
    );
    let got = s.get(&format!("/api/contacts/{c}")).await.expect(200);
    assert_eq!(got["contact"]["tags"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(
        s.get("/api/contacts?search=tag:lead").await.expect(200)["total"],
        "0"
    );

    // Stages.
    let customer = s
        .post(
            "/api/stages/new",
            json!({"name": "Customer", "weight": 5, "description": "Paid", "isPublished": 0}),
        )
        .await
        .expect(201)["stage"]
        .clone();
    assert_eq!(customer["weight"], 5);
    assert_eq!(customer["isPublished"], false);
    let customer = customer["id"].as_i64().unwrap();
    let lead_stage = s
        .post("/api/stages/new", json!({"name": "Lead"}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    let stages = s.get("/api/stages").await.expect(200);
    let names: Vec<&str> = stages["stages"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|st| st["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lead", "Customer"], "by weight, then name");
    assert_eq!(
        s.get(&format!("/api/stages/{customer}")).await.expect(200)["stage"]["description"],
        "Paid"
    );
    assert_eq!(s.get("/api/stages/999999").await.status, 404);
    let r = s
        .patch(
            &format!("/api/stages/{customer}/edit"),
            json!({"name": "Client", "isPublished": true}),
        )
        .await
        .expect(200);
    assert_eq!(r["stage"]["name"], "Client");
    assert_eq!(r["stage"]["weight"], 5, "PATCH keeps what it does not name");
    assert_eq!(r["stage"]["isPublished"], true);
    let r = s
        .put(
            &format!("/api/stages/{customer}/edit"),
            json!({"name": "Client"}),
        )
        .await
        .expect(200);
    assert_eq!(r["stage"]["weight"], 0, "PUT replaces");
    assert_eq!(r["stage"]["description"], "");
    for (body, key) in [
        (json!({"name": "lead"}), "name"),
        (json!({"weight": "heavy"}), "weight"),
        (json!({"isPublished": "maybe"}), "isPublished"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let r = s.patch(&format!("/api/stages/{customer}/edit"), body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains(key), "{}", r.text);
    }
    assert_eq!(
        s.put(
            &format!("/api/stages/{customer}/edit"),
            json!({"weight": 1})
        )
        .await
        .status,
        422,
        "PUT needs a name"
    );
    let r = s
        .put("/api/stages/999999/edit", json!({"name": "Won"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // DELETE: a contact in the stage is left in none.
    s.post(
        &format!("/api/stages/{lead_stage}/contact/{c}/add"),
        json!({}),
    )
    .await
    .expect(200);
    s.delete(&format!("/api/stages/{lead_stage}/delete"))
        .await
        .expect(200);
    assert_eq!(
        s.get(&format!("/api/stages/{lead_stage}")).await.status,
        404
    );
    let got = s.get(&format!("/api/contacts/{c}")).await.expect(200);
    assert!(got["contact"]["stage"].is_null(), "{got}");

    // Lists take Mautic's search (text, ids:), orderBy, orderByDir, start and limit.
    for (name, weight) in [("Alpha", 1), ("Beta", 9), ("Gamma", 3)] {
        s.post(
            "/api/stages/new",
            json!({"name": name, "weight": weight, "description": "listed"}),
        )
        .await
        .expect(201);
    }
    let names = |v: &serde_json::Value, list: &str, key: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|x| x[key].as_str().unwrap().to_owned())
            .collect()
    };
    let heaviest = s
        .get("/api/stages?limit=1&orderBy=weight&orderByDir=DESC")
        .await
        .expect(200);
    assert_eq!(names(&heaviest, "stages", "name"), ["Beta"], "{heaviest}");
    assert_eq!(
        heaviest["total"], 5,
        "total counts every match, not the page"
    );
    let listed = s
        .get("/api/stages?search=listed&orderBy=name&start=1")
        .await
        .expect(200);
    assert_eq!(names(&listed, "stages", "name"), ["Beta", "Gamma"]);
    let beta = heaviest["stages"][0]["id"].as_i64().unwrap();
    let by_id = s
        .get(&format!("/api/stages?search=ids:{beta},{customer}"))
        .await
        .expect(200);
    assert_eq!(names(&by_id, "stages", "name"), ["Client", "Beta"]);
    let tags = s
        .get(&format!("/api/tags?search=ids:{vip}&orderBy=tag"))
        .await
        .expect(200);
    assert_eq!(names(&tags, "tags", "tag"), ["gold"]);
    let all = s
        .get("/api/tags?orderBy=id&orderByDir=desc")
        .await
        .expect(200);
    assert_eq!(names(&all, "tags", "tag"), ["fresh", "gold"]);
    // NULLs sort as the smallest values on both databases: "fresh" has no description.
    s.patch(
        &format!("/api/tags/{vip}/edit"),
        json!({"description": "Best customers"}),
    )
    .await
    .expect(200);
    let by_description = s.get("/api/tags?orderBy=description").await.expect(200);
    assert_eq!(names(&by_description, "tags", "tag"), ["fresh", "gold"]);
    let by_description = s
        .get("/api/tags?orderBy=description&orderByDir=desc")
        .await
        .expect(200);
    assert_eq!(names(&by_description, "tags", "tag"), ["gold", "fresh"]);
    // Stages of one weight come by name.
    for name in ["Zulu", "Echo"] {
        s.post("/api/stages/new", json!({"name": name, "weight": 3}))
            .await
            .expect(201);
    }
    let threes = s.get("/api/stages?search=ids:").await.expect(200);
    assert_eq!(threes["total"], 0, "an empty ids: matches nothing");
    let all = s.get("/api/stages?limit=0").await.expect(200);
    let of_weight_3: Vec<String> = all["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["weight"] == 3)
        .map(|st| st["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(of_weight_3, ["Echo", "Gamma", "Zulu"]);
    let many: Vec<String> = (1..=1001).map(|i| i.to_string()).collect();
    let r = s
        .get(&format!("/api/tags?search=ids:{}", many.join(",")))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    for bad in [
        "/api/stages?orderBy=colour",
        "/api/stages?orderByDir=sideways",
        "/api/tags?search=ids:1,x",
        "/api/notes?orderBy=colour",
        "/api/companies?orderBy=1;DROP",
    ] {
        let r = s.get(bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    s.stop().await;
}

/// Mautic's batch endpoints for notes, companies, tags and stages: each item as its own
/// request, in order; the answer keyed by index, with status codes and errors by index.
async fn entity_batches(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s
        .create_contact(json!({"email": "batch@example.org"}))
        .await;

    let r = s
        .post(
            "/api/tags/batch/new",
            json!([{"tag": 5}, {"tag": "alpha"}, {"tag": "beta", "description": "B"}]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["statusCodes"], json!([422, 201, 201]), "{}", r.text);
    // Keyed by index, as PHP writes an array whose keys do not start at 0.
    assert_eq!(r.body["tags"]["1"]["tag"], "alpha", "{}", r.text);
    assert_eq!(r.body["tags"]["2"]["description"], "B");
    assert_eq!(r.body["errors"]["0"]["code"], 422, "{}", r.text);
    let alpha = r.body["tags"]["1"]["id"].as_i64().unwrap();
    let beta = r.body["tags"]["2"]["id"].as_i64().unwrap();

    let r = s
        .patch(
            "/api/tags/batch/edit",
            json!([{"id": alpha, "tag": "alpha2"}, {"id": beta, "description": "Bee"}]),
        )
        .await
        .expect(200);
    assert_eq!(r["statusCodes"], json!([200, 200]));
    assert_eq!(
        r["tags"][0]["tag"], "alpha2",
        "a list when none failed: {r}"
    );
    assert_eq!(r["tags"][1]["description"], "Bee");
    let r = s
        .put(
            "/api/tags/batch/edit",
            json!([{"id": 999999, "tag": "made-by-put"}, {"tag": "no id"}]),
        )
        .await
        .expect(200);
    assert_eq!(r["statusCodes"], json!([201, 422]), "{r}");
    assert!(
        r["errors"]["1"]["message"].as_str().unwrap().contains("id"),
        "{r}"
    );
    let made = r["tags"][0]["id"].as_i64().unwrap();

    let r = s
        .delete(&format!("/api/tags/batch/delete?ids={alpha},{made},999999"))
        .await
        .expect(200);
    assert_eq!(r["statusCodes"], json!([200, 200, 404]), "{r}");
    assert_eq!(
        r["tags"][0]["id"], alpha,
        "a batch delete shows the ids: {r}"
    );
    let left: Vec<String> = s.get("/api/tags").await.expect(200)["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["beta"]);
    // Form-encoded ids, as Mautic's PHP library sends them.
    let r = s
        .delete(&format!("/api/tags/batch/delete?ids%5B0%5D={beta}"))
        .await
        .expect(200);
    assert_eq!(r["statusCodes"], json!([200]), "{r}");

    // Notes, companies and stages the same way.
    let r = s
        .post(
            "/api/notes/batch/new",
            json!([{"lead": c, "text": "one", "type": "call"}, {"lead": c, "text": "two"}]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["notes"][1]["text"], "two");
    let notes: Vec<i64> = r.body["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    let r = s
        .patch(
            "/api/notes/batch/edit",
            json!([{"id": notes[0], "text": "one, edited"}]),
        )
        .await
        .expect(200);
    assert_eq!(r["notes"][0]["text"], "one, edited");
    let r = s
        .delete(&format!(
            "/api/notes/batch/delete?ids={},{}",
            notes[0], notes[1]
        ))
        .await
        .expect(200);
    assert_eq!(r["statusCodes"], json!([200, 200]));
    assert_eq!(s.get("/api/notes").await.expect(200)["total"], 0);

    let r = s
        .post(
            "/api/companies/batch/new",
            json!([{"companyname": "Acme"}, {"companyname": "Globex"}]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["companies"][1]["fields"]["all"]["companyname"],
        "Globex"
    );
    let r = s
        .post(
            "/api/stages/batch/new",
            json!([{"name": "Lead", "weight": 1}, {"name": "lead"}]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["statusCodes"],
        json!([201, 422]),
        "a name taken by the item before"
    );

    // Bad batches change nothing.
    for (path, body) in [
        ("/api/tags/batch/new", json!({"tag": "not a list"})),
        ("/api/tags/batch/new", json!([])),
    ] {
        assert_eq!(s.post(path, body).await.status, 400, "{path}");
    }
    let too_many: Vec<serde_json::Value> =
        (0..201).map(|i| json!({"tag": format!("t{i}")})).collect();
    assert_eq!(
        s.post("/api/tags/batch/new", json!(too_many)).await.status,
        400
    );
    assert_eq!(
        s.delete("/api/stages/batch/delete?ids=a,b").await.status,
        400
    );
    assert_eq!(s.get("/api/tags").await.expect(200)["total"], 0);
    s.stop().await;
}

/// The same identifier always finds its contact, whatever letters it holds; LIKE filters
/// escape alike on both databases; a field created twice at once is one field and a 422;
/// a wrong method is a 405.
async fn identifiers_filters_and_methods(backend: Backend) {
    let s = TestServer::start(backend).await;
    for email in ["ÄBC@Example.org", "ΑΣ@example.org", "Ørjan@Example.org"] {
        let first = s.post("/api/contacts/new", json!({"email": email})).await;
        assert_eq!(first.status, 201, "{}", first.text);
        let again = s
            .post(
                "/api/contacts/new",
                json!({"email": email, "firstname": "Again"}),
            )
            .await;
        assert_eq!(
            again.status, 200,
            "{email} found its contact: {}",
            again.text
        );
        assert_eq!(first.body["contact"]["id"], again.body["contact"]["id"]);
    }
    assert_eq!(count(&s).await, 3);

    s.create_contact(json!({"email": "100%real@x.org"})).await;
    s.create_contact(json!({"email": "100xreal@x.org"})).await;
    let total = |q: String| {
        let s = &s;
        async move {
            let r = s.get(&format!("/api/contacts?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.body["total"].as_str().unwrap().parse::<i64>().unwrap()
        }
    };
    let like = |expr: &str, val: &str| {
        format!(
            "where[0][col]=email&where[0][expr]={expr}&where[0][val]={}",
            val.replace('%', "%25").replace('\\', "%5C")
        )
    };
    assert_eq!(
        total(like("like", "100\\%%")).await,
        1,
        "\\% is a literal %"
    );
    assert_eq!(total(like("like", "100%")).await, 2);
    assert_eq!(total(like("notLike", "100\\%%")).await, 4);
    for bad in [like("like", "dan\\"), like("notLike", "x\\\\\\")] {
        let r = s.get(&format!("/api/contacts?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Size", "alias": "size", "type": "number"}),
    )
    .await
    .expect(201);
    for val in ["NaN", "inf"] {
        let r = s
            .get(&format!(
                "/api/contacts?where[0][col]=size&where[0][expr]=lt&where[0][val]={val}"
            ))
            .await;
        assert_eq!(r.status, 400, "{val}: {}", r.text);
    }
    let anonymous = s
        .post(
            "/api/contacts/new",
            json!({"lastActive": "2024-05-01 10:00:00"}),
        )
        .await;
    assert_eq!(anonymous.status, 201, "{}", anonymous.text);
    assert_eq!(total("search=!!is:anonymous".into()).await, 1);
    assert_eq!(total("search=!is:anonymous".into()).await, 5);
    let r = s
        .get(&format!("/api/contacts?search={}", "tag:v%20".repeat(33)))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Six requests create one alias at once: one field, the rest told so.
    let field = json!({"label": "Race", "alias": "race1", "type": "text"});
    let create = || s.post("/api/fields/contact/new", field.clone());
    let (a, b, c, d, e, f) =
        tokio::join!(create(), create(), create(), create(), create(), create());
    let answers = [a, b, c, d, e, f];
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 422, 422, 422, 422, 422],
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );

    let r = s
        .raw(Method::DELETE, "/api/contacts/new", "application/json", "")
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], 405);

    // Date-time fields compare as moments, whatever offset a value is written with.
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Meet", "alias": "meet", "type": "datetime"}),
    )
    .await
    .expect(201);
    s.create_contact(json!({"email": "meet@x.org", "meet": "2024-05-01 00:00:00"}))
        .await;
    let on_meet = |expr: &str, val: &str| {
        format!(
            "where[0][col]=meet&where[0][expr]={expr}&where[0][val]={}",
            val.replace('%', "%25").replace('+', "%2B")
        )
    };
    assert_eq!(total(on_meet("gt", "2024-04-30T23:00:00-03:00")).await, 0);
    assert_eq!(total(on_meet("lt", "2024-04-30T23:00:00-03:00")).await, 1);
    assert_eq!(total(on_meet("eq", "2024-05-01T00:00:00Z")).await, 1);
    assert_eq!(total(on_meet("eq", "2024-05-01T02:00:00+0200")).await, 1);
    assert_eq!(total(on_meet("like", "2024-05%")).await, 1);
    let r = s
        .get(&format!("/api/contacts?{}", on_meet("gt", "banana")))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Points are whole numbers: a fraction compares as a number would.
    s.create_contact(json!({"email": "five@x.org", "points": 5}))
        .await;
    s.create_contact(json!({"email": "six@x.org", "points": 6}))
        .await;
    let search = |q: &str| {
        total(format!(
            "search={}",
            q.replace('<', "%3C").replace('>', "%3E")
        ))
    };
    assert_eq!(search("points:5.5").await, 0);
    assert_eq!(search("points:>5.5").await, 1);
    assert_eq!(search("points:>=5.5").await, 1);
    assert_eq!(search("points:<5.5").await - search("points:<=5").await, 0);
    assert_eq!(search("points:<5.5 email:five@").await, 1);

    // Points stay within what a save accepts, so a contact read back saves back.
    let five = s
        .create_contact(json!({"email": "big@x.org", "points": 999_999_999_999_000_i64}))
        .await;
    s.post(
        &format!("/api/contacts/{five}/points/plus/1000000000"),
        json!({}),
    )
    .await
    .expect(200);
    let c = s.get(&format!("/api/contacts/{five}")).await.expect(200);
    assert_eq!(c["contact"]["points"], 999_999_999_999_999_i64);
    let changes = s
        .activity(five, "filters[includeEvents][]=point.gained")
        .await;
    let change = &changes["events"][0]["extra"];
    assert_eq!(
        change["delta"], 999,
        "the history says what changed: {change}"
    );
    assert_eq!(change["requested"], 1_000_000_000, "{change}");
    s.patch(
        &format!("/api/contacts/{five}/edit"),
        json!({"points": c["contact"]["points"]}),
    )
    .await
    .expect(200);
    let r = s
        .patch(
            &format!("/api/contacts/{five}/edit"),
            json!({"points": 9_223_372_036_854_775_807_i64}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("15 digits"), "{}", r.text);
    // Two spellings differing in non-ASCII case are one contact, within one batch as in
    // two requests, on both databases (SQLite folds through `fold()`, not its ASCII-only
    // `lower()`).
    let batch = s
        .post(
            "/api/contacts/batch/new",
            json!([{"email": "zoë@fold.example"}, {"email": "zoË@fold.example"}]),
        )
        .await;
    s.post("/api/contacts/new", json!({"email": "anä@fold.example"}))
        .await
        .expect(201);
    let alone = s
        .post("/api/contacts/new", json!({"email": "anÄ@fold.example"}))
        .await;
    let batch_matched = batch.body["statusCodes"][1] == 200;
    let alone_matched = alone.status == 200;
    assert_eq!(
        batch_matched, alone_matched,
        "{} / {}",
        batch.text, alone.text
    );
    assert!(batch_matched, "{}", batch.text);
    // Searches fold the same way: prefix, exact, contains, names, companies and tags.
    s.post(
        "/api/contacts/new",
        json!({"email": "emile@föld.example", "firstname": "Émile", "lastname": "ÖZDEMİR",
               "company": "Ærø Ørsted", "city": "ÅRHUS", "tags": ["ÉTÉ"]}),
    )
    .await
    .expect(201);
    for search in [
        "email:ZOË",
        "email:+ANÄ@FOLD.EXAMPLE",
        "name:émile",
        "firstname:ÉMI",
        "company:ærø",
        "tag:été",
        "årh",
        "\"émile özdemi\"",
        "company:%ØRSTED",
        "email:%@FÖLD.EXAMPLE",
        "ÆRØ ØRS",
    ] {
        let found = s
            .send(
                s.client
                    .get(s.url("/api/contacts"))
                    .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
                    .query(&[("search", search)]),
            )
            .await
            .expect(200);
        assert_eq!(found["total"], "1", "{search}: {found}");
    }
    s.stop().await;
}

/// Guessing passwords through the API is throttled as on the login page: after ten wrong
/// ones from an address, that address is refused (even with the right password) before
/// any password is checked.
#[tokio::test]
async fn api_password_guessing_is_throttled() {
    let s = TestServer::start(Backend::Sqlite).await;
    let try_with = |password: &str| {
        s.send(
            s.client
                .get(s.url("/api/contacts"))
                .basic_auth("admin", Some(password)),
        )
    };
    for i in 0..10 {
        assert_eq!(try_with(&format!("guess-{i}")).await.status, 401);
    }
    let locked = try_with(magpie_tests::ADMIN_PASSWORD).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    assert_eq!(locked.body["errors"][0]["code"], 429);
    assert_eq!(locked.headers["retry-after"], "900");
    // Another name from the same address is still checked (and a wrong one refused).
    let other = s
        .send(
            s.client
                .get(s.url("/api/contacts"))
                .basic_auth("someone-else", Some("nope")),
        )
        .await;
    assert_eq!(other.status, 401);
    s.stop().await;
}

/// A client that trickles its headers, or sends none, is disconnected after
/// `[server] header_timeout_seconds`, as is a keep-alive connection left idle; a body
/// that takes longer than that but keeps coming (an upload) is not cut, one that trickles
/// is (408); other clients are served meanwhile.
#[tokio::test]
async fn slow_headers_are_cut_off_and_slow_bodies_are_not() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let s = TestServer::start_with(Backend::Sqlite, "[server]\nheader_timeout_seconds = 1\n").await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // Reads until the server closes the connection; returns what it sent and when.
    async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
        let started = Instant::now();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
            .await
            .expect("the server never closed the connection");
        (
            String::from_utf8_lossy(&got).into_owned(),
            started.elapsed(),
        )
    }

    // Headers a byte at a time, never finished.
    let mut trickler = TcpStream::connect(&addr).await.unwrap();
    let trickle = tokio::spawn(async move {
        let started = Instant::now();
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if trickler.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(started.elapsed() < Duration::from_secs(10), "never cut off");
        }
        unreachable!()
    });
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // Others are served meanwhile.
    assert_eq!(s.get("/api/contacts").await.status, 200);
    let (answer, after) = until_closed(&mut silent).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
    let cut = trickle.await.unwrap();
    assert!(cut < Duration::from_secs(5), "cut off after {cut:?}");

    // A keep-alive connection is closed once idle for the timeout, after its answer.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, after) = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );

    // A body sent over three times the timeout, at about 1,300 bytes a second, is read
    // whole and answered.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("admin:{}", magpie_tests::ADMIN_PASSWORD));
    let open_post = |length: usize| {
        let (addr, auth) = (addr.clone(), auth.clone());
        async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(
                format!(
                    "POST /api/contacts/new HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
                     Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            s
        }
    };
    let body = format!(
        r#"{{"email": "slow.body@example.org",{}"firstname": "Slow"}}"#,
        " ".repeat(4000)
    );
    let mut upload = open_post(body.len()).await;
    for chunk in body.as_bytes().chunks(body.len().div_ceil(6)) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        upload.write_all(chunk).await.unwrap();
    }
    let (answer, _) = until_closed(&mut upload).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // A body trickled a byte at a time is cut off with a 408, and nothing is written.
    // (The bytes stop before the cut, so the server's close is not a reset that could
    // discard its answer.)
    let mut trickled = open_post(1000).await;
    let started = Instant::now();
    for byte in b"{\"em" {
        trickled.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (answer, _) = until_closed(&mut trickled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8));
    // An upload (streamed, not buffered) is held to the same pace.
    let mut upload = TcpStream::connect(&addr).await.unwrap();
    upload
        .write_all(
            format!(
                "POST /api/imports?filename=slow.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
                 Content-Type: text/csv\r\nContent-Length: 100000\r\nConnection: close\r\n\r\nemail\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, _) = until_closed(&mut upload).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let none = s
        .get("/api/contacts?search=email:trickled@example.org")
        .await
        .expect(200);
    assert_eq!(none["total"], "0", "{none}");
    let found = s
        .get("/api/contacts?search=email:slow.body@example.org")
        .await
        .expect(200);
    assert_eq!(found["total"], "1", "{found}");
    s.stop().await;
}
