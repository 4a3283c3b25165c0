//! Merging contacts through the API: nothing is lost, old ids resolve to the winner.

use magpie_tests::{Backend, TestServer, both_backends, json};

both_backends!(
    manual_merge_moves_every_kind_of_row,
    merge_refuses_bad_requests
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
