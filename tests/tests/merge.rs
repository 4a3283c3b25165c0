//! Merging contacts through the API: nothing is lost, old ids resolve to the winner.

use magpie_tests::{Backend, TestServer, both_backends, json};

both_backends!(
    manual_merge_moves_every_kind_of_row,
    merge_refuses_bad_requests,
    a_merged_away_id_reaches_the_survivor,
    concurrent_merges_and_edits_lose_nothing,
    an_edit_to_another_contacts_identifier_merges_them
);

async fn manual_merge_moves_every_kind_of_row(backend: Backend) {
    let s = TestServer::start(backend).await;
    let winner = s
        .create_contact(json!({"firstname": "Ada", "email": "ada@example.org", "points": 10, "tags": ["vip", "shared"],
                               "ipAddress": "192.0.2.1", "lastActive": "2024-01-01 10:00:00"}))
        .await;
    let loser = s
        .create_contact(json!({"firstname": "Augusta", "lastname": "King", "email": "augusta@example.org", "city": "London",
                               "points": 5, "tags": ["shared", "old"], "ipAddress": "192.0.2.2", "lastActive": "2024-03-01 10:00:00",
                               "doNotContact": [{"channel": "sms", "reason": 3}],
                               "utmtags": {"utm_source": "newsletter"}}))
        .await;
    s.post(
        "/api/notes/new",
        json!({"lead": loser, "text": "met at the conference"}),
    )
    .await
    .expect(201);
    let loser_events = s.activity(loser, "limit=100").await["total"]
        .as_i64()
        .unwrap();
    let winner_events = s.activity(winner, "limit=100").await["total"]
        .as_i64()
        .unwrap();

    let r = s
        .post(&format!("/api/contacts/{winner}/merge/{loser}"), json!({}))
        .await
        .expect(200);
    let c = &r["contact"];
    assert_eq!(c["id"], winner);
    // The loser was modified later: its non-empty values win; empty never overwrites.
    assert_eq!(c["fields"]["all"]["firstname"], "Augusta");
    assert_eq!(c["fields"]["all"]["lastname"], "King");
    assert_eq!(c["fields"]["all"]["city"], "London");
    assert_eq!(c["fields"]["all"]["email"], "augusta@example.org");
    assert_eq!(c["points"], 15, "points add up");
    assert_eq!(
        c["lastActive"], "2024-03-01T10:00:00+00:00",
        "the later last-active"
    );
    let tags: Vec<&str> = c["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["old", "shared", "vip"]);
    assert_eq!(c["ipAddresses"].as_object().unwrap().len(), 2);
    assert_eq!(c["doNotContact"][0]["channel"], "sms");
    assert_eq!(c["utmtags"][0]["utmSource"], "newsletter");
    let notes = s
        .get(&format!("/api/contacts/{winner}/notes"))
        .await
        .expect(200);
    assert_eq!(notes["total"], 1);
    let events = s.activity(winner, "limit=500").await;
    assert_eq!(
        events["total"].as_i64().unwrap(),
        winner_events + loser_events + 1,
        "every event moved, plus the merge event"
    );
    let merged = s
        .activity(winner, "filters[includeEvents][]=lead.merged")
        .await;
    assert_eq!(merged["events"][0]["extra"]["merged_id"], loser);
    // Each contact's creation and identification (derived from its row until now) stay
    // in the history, once each.
    for kind in ["lead.create", "lead.apiadded", "lead.identified"] {
        let of_kind = s
            .activity(winner, &format!("filters[includeEvents][]={kind}"))
            .await;
        assert_eq!(of_kind["total"], 2, "{kind}: {of_kind}");
    }
    assert!(merged["events"][0]["extra"]["fields_taken"]["firstname"].is_string());

    // The loser's id resolves to the winner, for reads and writes.
    let old = s.get(&format!("/api/contacts/{loser}")).await.expect(200);
    assert_eq!(old["contact"]["id"], winner);
    let r = s
        .patch(
            &format!("/api/contacts/{loser}/edit"),
            json!({"position": "Countess"}),
        )
        .await
        .expect(200);
    assert_eq!(r["contact"]["id"], winner);
    let total = s.get("/api/contacts").await.expect(200)["total"].clone();
    assert_eq!(total, "1");
    s.stop().await;
}

async fn merge_refuses_bad_requests(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.create_contact(json!({"email": "a@example.org"})).await;
    assert_eq!(
        s.post(&format!("/api/contacts/{a}/merge/{a}"), json!({}))
            .await
            .status,
        422
    );
    assert_eq!(
        s.post(&format!("/api/contacts/{a}/merge/424242"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        s.post(&format!("/api/contacts/424242/merge/{a}"), json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        s.get(&format!("/api/contacts/{a}")).await.status,
        200,
        "nothing changed"
    );
    s.stop().await;
}

/// Merges run concurrently with each other and with edits of the same contacts (on
/// PostgreSQL in parallel transactions): every acknowledged change is in the result, and a
/// race ends in an answer, never a 500.
async fn concurrent_merges_and_edits_lose_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let winner = s
        .create_contact(json!({"email": "w@example.org", "points": 1}))
        .await;
    let mut losers = Vec::new();
    for i in 0..6 {
        losers.push(
            s.create_contact(json!({"email": format!("l{i}@example.org"), "points": 10}))
                .await,
        );
    }
    let merges: Vec<_> = losers
        .iter()
        .map(|l| spawn_post(&s, format!("/api/contacts/{winner}/merge/{l}")))
        .collect();
    // Increments of the winner while the merges run.
    let plus: Vec<_> = (0..12)
        .map(|_| spawn_post(&s, format!("/api/contacts/{winner}/points/plus/1")))
        .collect();
    for h in merges.into_iter().chain(plus) {
        assert_eq!(h.await.unwrap(), 200);
    }
    let c = s.get(&format!("/api/contacts/{winner}")).await.expect(200);
    assert_eq!(c["contact"]["points"], 1 + 60 + 12, "no increment lost");

    // Opposite merges of one pair: one wins, the other finds its contact gone.
    let a = s.create_contact(json!({"email": "a@example.org"})).await;
    let b = s.create_contact(json!({"email": "b@example.org"})).await;
    let ab = spawn_post(&s, format!("/api/contacts/{a}/merge/{b}"));
    let ba = spawn_post(&s, format!("/api/contacts/{b}/merge/{a}"));
    let mut statuses = [ab.await.unwrap(), ba.await.unwrap()];
    statuses.sort();
    assert!(
        statuses == [200, 404] || statuses == [200, 422],
        "{statuses:?}"
    );
    s.stop().await;
}

/// A POST with an empty JSON body, sent on a task of its own; its status.
fn spawn_post(s: &TestServer, path: String) -> tokio::task::JoinHandle<u16> {
    let req = s
        .client
        .post(s.url(&path))
        .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
        .json(&json!({}));
    tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
}

/// Every per-contact call by a merged-away id reaches the contact it went into, except a
/// delete, which would delete the survivor's history with it.
async fn a_merged_away_id_reaches_the_survivor(backend: Backend) {
    let s = TestServer::start(backend).await;
    let winner = s.create_contact(json!({"email": "w@example.org"})).await;
    let loser = s.create_contact(json!({"email": "l@example.org"})).await;
    s.post(&format!("/api/contacts/{winner}/merge/{loser}"), json!({}))
        .await
        .expect(200);
    for path in [
        "activity",
        "notes",
        "devices",
        "companies",
        "campaigns",
        "segments",
    ] {
        s.get(&format!("/api/contacts/{loser}/{path}"))
            .await
            .expect(200);
    }
    s.post(&format!("/api/contacts/{loser}/points/plus/5"), json!({}))
        .await
        .expect(200);
    s.post(
        &format!("/api/contacts/{loser}/dnc/email/add"),
        json!({"reason": 3}),
    )
    .await
    .expect(200);
    s.post(
        &format!("/api/contacts/{loser}/utm/add"),
        json!({"utm_source": "old-link"}),
    )
    .await
    .expect(200);
    s.post(
        "/api/notes/new",
        json!({"lead": loser, "text": "by the old id"}),
    )
    .await
    .expect(201);
    // Companies and stages take the old id too.
    let company = s
        .post("/api/companies/new", json!({"companyname": "Old Id Ltd"}))
        .await
        .expect(201)["company"]["id"]
        .as_i64()
        .unwrap();
    s.post(
        &format!("/api/companies/{company}/contact/{loser}/add"),
        json!({}),
    )
    .await
    .expect(200);
    let stage = s
        .post("/api/stages/new", json!({"name": "Lead"}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    s.post(
        &format!("/api/stages/{stage}/contact/{loser}/add"),
        json!({}),
    )
    .await
    .expect(200);
    let companies = s
        .get(&format!("/api/contacts/{winner}/companies"))
        .await
        .expect(200);
    assert_eq!(companies["total"], 1, "{companies}");
    let c = s.get(&format!("/api/contacts/{winner}")).await.expect(200);
    let c = &c["contact"];
    assert_eq!(c["stage"]["id"], stage, "{c}");
    assert_eq!(c["points"], 5);
    assert_eq!(c["doNotContact"][0]["channel"], "email");
    assert_eq!(c["utmtags"][0]["utmSource"], "old-link");
    let notes = s
        .get(&format!("/api/contacts/{winner}/notes"))
        .await
        .expect(200);
    assert_eq!(notes["total"], 1);
    assert_eq!(
        s.delete(&format!("/api/contacts/{loser}/delete"))
            .await
            .status,
        404
    );
    s.get(&format!("/api/contacts/{winner}")).await.expect(200);
    s.stop().await;
}

/// As in Mautic's API, an edit that gives a contact the unique identifier of another
/// merges that other into it: the edited contact survives, keeps the values it was just
/// given and takes the other's values where it has none, its points, tags and history;
/// the other's id leads to it. An edit without identifiers merges nothing. In a batch, two
/// items given one email become one contact, answered for both.
async fn an_edit_to_another_contacts_identifier_merges_them(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s
        .create_contact(json!({"email": "a@edit.example", "firstname": "Ann", "points": 5}))
        .await;
    let b = s
        .create_contact(
            json!({"email": "b@edit.example", "firstname": "Bob", "city": "Oslo",
                               "points": 3, "tags": ["from-b"]}),
        )
        .await;
    let r = s
        .patch(
            &format!("/api/contacts/{a}/edit"),
            json!({"email": "B@edit.example"}),
        )
        .await
        .expect(200);
    let c = &r["contact"];
    assert_eq!(c["id"], a);
    assert_eq!(c["fields"]["all"]["email"], "B@edit.example");
    assert_eq!(
        c["fields"]["all"]["firstname"], "Ann",
        "the edited contact's own value"
    );
    assert_eq!(c["fields"]["all"]["city"], "Oslo", "taken from the other");
    assert_eq!(c["points"], 8);
    assert_eq!(c["tags"][0]["tag"], "from-b");
    let via_old = s.get(&format!("/api/contacts/{b}")).await.expect(200);
    assert_eq!(via_old["contact"]["id"], a);
    let batch_old = s
        .patch(
            "/api/contacts/batch/edit",
            json!([{"id": b, "city": "Bergen"}]),
        )
        .await
        .expect(200);
    assert_eq!(
        batch_old["contacts"][0]["id"], a,
        "a batch edit by the old id"
    );
    assert_eq!(batch_old["contacts"][0]["fields"]["all"]["city"], "Bergen");
    let merged = s.activity(a, "filters[includeEvents][]=lead.merged").await;
    assert_eq!(merged["total"], 1, "{merged}");
    let listed = s
        .get("/api/contacts?search=email:%25@edit.example")
        .await
        .expect(200);
    assert_eq!(listed["total"], "1", "{listed}");

    // Batch: two contacts given one email become one, answered for both items.
    let c1 = s.create_contact(json!({"email": "c@edit.example"})).await;
    let d1 = s
        .create_contact(json!({"email": "d@edit.example", "lastname": "Dee"}))
        .await;
    let r = s
        .patch(
            "/api/contacts/batch/edit",
            json!([{"id": c1, "email": "e@edit.example"}, {"id": d1, "email": "e@edit.example"}]),
        )
        .await
        .expect(200);
    assert_eq!(r["statusCodes"], json!([200, 200]), "{}", r["statusCodes"]);
    let ids: Vec<i64> = r["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![c1, c1]);
    assert_eq!(r["contacts"][0]["fields"]["all"]["lastname"], "Dee");
    let listed = s
        .get("/api/contacts?search=email:%2Be@edit.example")
        .await
        .expect(200);
    assert_eq!(listed["total"], "1", "{listed}");

    // A PUT to an id that names no contact updates the contact its email matches
    // (Mautic's getNewEntity), rather than creating one to merge it into.
    let r = s
        .put(
            "/api/contacts/999999/edit",
            json!({"email": "E@edit.example", "firstname": "Eve"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["contact"]["id"], c1);
    assert_eq!(r.body["contact"]["fields"]["all"]["firstname"], "Eve");
    assert_eq!(
        r.body["contact"]["fields"]["all"]["lastname"],
        serde_json::Value::Null,
        "PUT replaces"
    );
    s.stop().await;
}
