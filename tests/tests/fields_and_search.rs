//! Custom fields (real columns) and the search grammar, end to end on both databases.

use magpie::store::Exec;
use magpie_tests::{Backend, TestServer, both_backends, json};
use serde_json::Value;

both_backends!(
    custom_field_lifecycle,
    field_definitions_are_validated,
    custom_unique_identifier_with_and_or,
    search_grammar,
    where_filters_ordering_and_paging,
    entity_lists_filter_and_order,
    search_is_never_an_injection,
    free_text_follows_every_change,
    a_number_can_identify_contacts,
);

/// A number field as the unique identifier: the same number finds its contact.
async fn a_number_can_identify_contacts(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Customer number", "alias": "cust_no", "type": "number",
               "isUniqueIdentifier": true}),
    )
    .await
    .expect(201);
    let first = s
        .post(
            "/api/contacts/new",
            json!({"cust_no": 42, "firstname": "Ada"}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = s
        .post(
            "/api/contacts/new",
            json!({"cust_no": "42", "lastname": "Lovelace"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(first.body["contact"]["id"], again.body["contact"]["id"]);
    assert_eq!(again.body["contact"]["fields"]["all"]["firstname"], "Ada");
    let other = s.post("/api/contacts/new", json!({"cust_no": 43})).await;
    assert_eq!(other.status, 201, "{}", other.text);
    s.stop().await;
}

/// Runs the background free-text indexer's work now (SQLite queues writes for it).
async fn index_now(s: &TestServer) {
    while magpie::store::free_text::index_pending(&s.state().store)
        .await
        .unwrap()
        > 0
    {}
}

async fn search_ids(s: &TestServer, query: &str) -> Vec<i64> {
    let r = s
        .get(&format!(
            "/api/contacts?limit=100&orderBy=id&orderByDir=asc&search={}",
            urlencode(query)
        ))
        .await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    assert_eq!(
        r.body["total"].as_str().unwrap().parse::<usize>().unwrap(),
        ids(&r.body).len(),
        "{query}: total"
    );
    ids(&r.body)
}

fn ids(list: &serde_json::Value) -> Vec<i64> {
    list["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

async fn custom_field_lifecycle(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Shoe size", "type": "number", "group": "personal", "isShortVisible": true, "properties": {"scale": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let field_id = r.body["field"]["id"].as_i64().unwrap();
    assert_eq!(r.body["field"]["alias"], "shoe_size");
    let r = s
        .post("/api/fields/contact/new", json!({"label": "Colour", "alias": "colour", "type": "multiselect", "properties": {"list": "red|green|blue"}, "isIndex": true}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // A lookup's suggestions come back as sent (Mautic's PHP library checks this), and
    // the field takes values off the list too.
    let r = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Salutation", "type": "lookup", "properties": {"list": ["Mr", "Mrs", "Miss"]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["field"]["properties"],
        json!({"list": ["Mr", "Mrs", "Miss"]})
    );
    let lookup = r.body["field"]["id"].as_i64().unwrap();
    let got = s
        .get(&format!("/api/fields/contact/{lookup}"))
        .await
        .expect(200);
    assert_eq!(
        got["field"]["properties"]["list"],
        json!(["Mr", "Mrs", "Miss"])
    );

    let id = s
        .create_contact(
            json!({"email": "f@example.org", "shoe_size": "42.25", "colour": ["green", "red"], "salutation": "Dr"}),
        )
        .await;
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(
        c["contact"]["fields"]["personal"]["shoe_size"]["value"],
        42.3
    );
    assert_eq!(c["contact"]["fields"]["all"]["colour"], "green|red");
    let r = s
        .post(
            "/api/contacts/new",
            json!({"email": "g@example.org", "colour": ["purple"]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    let found = s
        .get("/api/contacts?search=shoe_size:%3E40")
        .await
        .expect(200);
    assert_eq!(ids(&found), vec![id]);
    assert_eq!(
        s.get("/api/contacts?search=shoe_size:%3C40")
            .await
            .expect(200)["total"],
        "0"
    );
    let found = s
        .get("/api/contacts?search=colour:%25red%25")
        .await
        .expect(200);
    assert_eq!(ids(&found), vec![id]);

    // Editing cannot change alias or storage type; label and flags can change.
    let r = s
        .patch(
            &format!("/api/fields/contact/{field_id}/edit"),
            json!({"alias": "other"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .patch(
            &format!("/api/fields/contact/{field_id}/edit"),
            json!({"type": "text"}),
        )
        .await;
    assert_eq!(r.status, 422);
    // A type never changes, even to one stored alike: the values and the default stored
    // under the old one need not fit the new one.
    let text_field = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Since", "alias": "since_when", "type": "text", "defaultValue": "hello"}),
        )
        .await
        .expect(201)["field"]["id"]
        .as_i64()
        .unwrap();
    let r = s
        .patch(
            &format!("/api/fields/contact/{text_field}/edit"),
            json!({"type": "date"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.body["errors"][0]["details"]["type"].is_array(),
        "{}",
        r.text
    );
    // New options that leave out the default are refused, unless the default changes too.
    let select = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Size", "alias": "size_pick", "type": "select",
                   "properties": {"list": "a|b"}, "defaultValue": "b"}),
        )
        .await
        .expect(201)["field"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/fields/contact/{select}/edit");
    let r = s.patch(&path, json!({"properties": {"list": "a|c"}})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("defaultValue"), "{}", r.text);
    let r = s
        .patch(
            &path,
            json!({"properties": {"list": "a|c"}, "defaultValue": "c"}),
        )
        .await
        .expect(200);
    assert_eq!(r["field"]["defaultValue"], "c");
    for id in [text_field, select] {
        s.delete(&format!("/api/fields/contact/{id}/delete"))
            .await
            .expect(200);
    }
    // Other edits leave the default alone, as the admin's form sends them (with the type),
    // even where it is stored otherwise than written (last active: milliseconds).
    let all = s.get("/api/fields/contact").await.expect(200);
    let last_active = all["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["alias"] == "last_active")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/fields/contact/{last_active}/edit");
    s.patch(&path, json!({"defaultValue": "2024-05-01 12:00:00"}))
        .await
        .expect(200);
    s.patch(&path, json!({"label": "Last seen", "type": "datetime"}))
        .await
        .expect(200);
    s.patch(
        &path,
        json!({"label": "Date Last Active", "defaultValue": null}),
    )
    .await
    .expect(200);
    let r = s
        .patch(
            &format!("/api/fields/contact/{field_id}/edit"),
            json!({"label": "Shoe size (EU)", "isRequired": true}),
        )
        .await
        .expect(200);
    assert_eq!(r["field"]["label"], "Shoe size (EU)");
    // Now required: a new contact without it is refused.
    let r = s
        .post("/api/contacts/new", json!({"email": "h@example.org"}))
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["errors"][0]["details"]["shoe_size"].is_array(),
        "{}",
        r.text
    );

    let listed = s.get("/api/fields/contact").await.expect(200);
    assert_eq!(listed["total"], 31);
    // A list, in order, as Mautic answers.
    let listed = listed["fields"].as_array().expect("a list");
    assert_eq!(listed.len(), 31);
    assert_eq!(listed[0]["alias"], "title");
    assert_eq!(
        s.get(&format!("/api/fields/contact/{field_id}"))
            .await
            .expect(200)["field"]["alias"],
        "shoe_size"
    );

    let r = s
        .delete(&format!("/api/fields/contact/{field_id}/delete"))
        .await
        .expect(200);
    assert_eq!(r["field"]["id"], json!(null));
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert!(
        c["contact"]["fields"]["all"].get("shoe_size").is_none(),
        "the column is gone"
    );
    assert_eq!(s.get("/api/contacts?search=shoe_size:1").await.status, 400);
    // Default fields cannot be deleted.
    assert_eq!(s.delete("/api/fields/contact/6/delete").await.status, 403);
    s.stop().await;
}

async fn field_definitions_are_validated(backend: Backend) {
    let s = TestServer::start(backend).await;
    let bad = [
        json!({"type": "text"}),
        json!({"label": "X", "alias": "Bad-Alias"}),
        json!({"label": "X", "alias": "id"}),
        json!({"label": "X", "alias": "email"}),
        // Columns of `contacts` that are not fields.
        json!({"label": "X", "alias": "date_added"}),
        json!({"label": "X", "alias": "email_rev"}),
        json!({"label": "X", "alias": "created_source"}),
        json!({"label": "X", "alias": "identified_source"}),
        json!({"label": "X", "alias": "search_text"}),
        json!({"label": "X", "alias": "x\"; DROP TABLE contacts; --"}),
        json!({"label": "X", "type": "spreadsheet"}),
        json!({"label": "X", "type": "select"}),
        json!({"label": "X", "type": "select", "properties": {"list": ["a", "a"]}}),
        json!({"label": "X", "type": "number", "defaultValue": "many"}),
        json!({"label": "X", "type": "boolean", "isUniqueIdentifier": true}),
        json!({"label": "X", "colour": "red"}),
        json!({"label": "X", "group": "Not A Group!"}),
    ];
    for body in bad {
        let r = s.post("/api/fields/contact/new", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
    }
    assert_eq!(
        s.get("/api/fields/contact").await.expect(200)["total"],
        28,
        "nothing was created"
    );
    assert_eq!(s.get("/api/fields/company").await.status, 404);
    // PUT creates a field whose id is unknown (201), edits one that exists (200).
    let put = s
        .put(
            "/api/fields/contact/999999/edit",
            json!({"label": "Made by PUT", "type": "text"}),
        )
        .await
        .expect(201);
    assert_eq!(put["field"]["alias"], "made_by_put", "{put}");
    let put_id = put["field"]["id"].as_i64().unwrap();
    assert_ne!(put_id, 999999);
    let put = s
        .put(
            &format!("/api/fields/contact/{put_id}/edit"),
            json!({"label": "Made by PUT, renamed"}),
        )
        .await
        .expect(200);
    assert_eq!(put["field"]["label"], "Made by PUT, renamed");
    // PUT on a field that exists replaces it, as Mautic's form does: what the body leaves
    // out returns to a new field's value; alias, type, group and order stay.
    let tier = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Tier", "alias": "tier", "type": "select", "group": "professional",
                   "isRequired": true, "isPubliclyUpdatable": true, "isShortVisible": true,
                   "defaultValue": "gold",
                   "properties": {"list": [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}]}}),
        )
        .await
        .expect(201)["field"]
        .clone();
    let tier_edit = format!("/api/fields/contact/{}/edit", tier["id"]);
    let r = s.put(&tier_edit, json!({"label": "Tier"})).await;
    assert_eq!(r.status, 422, "a select needs its options: {}", r.text);
    assert!(r.text.contains("properties"), "{}", r.text);
    let r = s
        .put(&tier_edit, json!({"properties": tier["properties"]}))
        .await;
    assert_eq!(r.status, 422, "the label cannot be left out: {}", r.text);
    let same = s
        .get(&format!("/api/fields/contact/{}", tier["id"]))
        .await
        .expect(200);
    assert_eq!(same["field"], tier, "a refused PUT changes nothing");
    let replaced = s
        .put(
            &tier_edit,
            json!({"label": "Level", "properties": tier["properties"]}),
        )
        .await
        .expect(200)["field"]
        .clone();
    assert_eq!(replaced["label"], "Level");
    assert_eq!(
        (
            &replaced["alias"],
            &replaced["type"],
            &replaced["group"],
            &replaced["order"]
        ),
        (
            &tier["alias"],
            &tier["type"],
            &tier["group"],
            &tier["order"]
        ),
        "{replaced}"
    );
    for flag in ["isRequired", "isPubliclyUpdatable", "isShortVisible"] {
        assert_eq!(replaced[flag], false, "{flag}: {replaced}");
    }
    assert!(replaced["defaultValue"].is_null(), "{replaced}");
    assert_eq!(
        s.patch(&tier_edit, json!({"isRequired": true}))
            .await
            .expect(200)["field"]["label"],
        "Level",
        "PATCH keeps what it does not name"
    );
    s.delete(&format!("/api/fields/contact/{}/delete", tier["id"]))
        .await
        .expect(200);
    // A default field keeps its flags unless the PUT names them.
    let email = s.get("/api/fields/contact").await.expect(200)["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["alias"] == "email")
        .unwrap()
        .clone();
    let put = s
        .put(
            &format!("/api/fields/contact/{}/edit", email["id"]),
            json!({"label": "E-mail"}),
        )
        .await
        .expect(200);
    assert_eq!(put["field"]["label"], "E-mail");
    for flag in [
        "isUniqueIdentifier",
        "isPubliclyUpdatable",
        "isShortVisible",
        "isRequired",
    ] {
        assert_eq!(put["field"][flag], email[flag], "{flag}: {put}");
    }
    s.patch(
        &format!("/api/fields/contact/{}/edit", email["id"]),
        json!({"label": email["label"]}),
    )
    .await
    .expect(200);
    assert_eq!(
        s.patch("/api/fields/contact/999998/edit", json!({"label": "x"}))
            .await
            .status,
        404,
        "PATCH does not create"
    );
    // Mautic's own clients spell the flag `isUniqueIdentifer`.
    let f = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Customer no", "alias": "customer_no", "isUniqueIdentifer": true}),
        )
        .await
        .expect(201);
    assert_eq!(f["field"]["isUniqueIdentifier"], true, "{f}");
    let r = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Y", "isUniqueIdentifer": "maybe"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // A plain user may read fields but not change them.
    let user = create_user(&s, "reader").await;
    let r = s
        .send(
            s.client
                .post(s.url("/api/fields/contact/new"))
                .basic_auth(&user, Some("reader-password"))
                .json(&json!({"label": "Y"})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .send(
            s.client
                .get(s.url("/api/fields/contact"))
                .basic_auth(&user, Some("reader-password")),
        )
        .await;
    assert_eq!(r.status, 200);
    s.stop().await;
}

async fn create_user(s: &TestServer, name: &str) -> String {
    let hash = magpie::users::hash_password(&format!("{name}-password")).unwrap();
    let mut tx = s.state().store.begin().await.unwrap();
    let new = magpie::store::users::NewUser {
        username: name,
        email: "",
        first_name: name,
        last_name: "",
        role: magpie::users::Role::User,
        password_hash: &hash,
    };
    magpie::store::users::insert(&mut tx, &new, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    name.to_owned()
}

async fn custom_unique_identifier_with_and_or(backend: Backend) {
    for (operator, expect_same) in [("and", false), ("or", true)] {
        let s = TestServer::start_with(
            backend,
            &format!("[contacts]\nunique_identifier_operator = \"{operator}\""),
        )
        .await;
        let r = s.post("/api/fields/contact/new", json!({"label": "Customer number", "alias": "customer_no", "isUniqueIdentifier": true})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let first = s
            .create_contact(json!({"email": "u@example.org", "customer_no": "C-1"}))
            .await;
        // Same email, different customer number: one of two identifiers matches.
        let r = s
            .post(
                "/api/contacts/new",
                json!({"email": "u@example.org", "customer_no": "C-2"}),
            )
            .await;
        let second = r.body["contact"]["id"].as_i64().unwrap();
        assert_eq!(
            first == second,
            expect_same,
            "operator {operator}: {}",
            r.text
        );
        // Both identifiers match: always the same contact.
        let r = s
            .post(
                "/api/contacts/new",
                json!({"email": "U@example.org", "customer_no": "c-1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{operator}: {}", r.text);
        s.stop().await;
    }
}

async fn seed(s: &TestServer) -> Vec<i64> {
    let people = [
        json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.org", "city": "London", "tags": ["vip"], "points": 50, "lastActive": "2024-05-01 10:00:00", "owner": 1}),
        json!({"firstname": "Alan", "lastname": "Turing", "email": "alan@example.com", "city": "Manchester", "tags": ["vip", "gold"], "points": 30, "lastActive": "2024-05-03 10:00:00"}),
        json!({"firstname": "Grace", "lastname": "Hopper", "email": "grace@navy.example.org", "city": "New York", "company": "US Navy", "points": 40, "lastActive": "2024-05-02 10:00:00"}),
        json!({"firstname": "John", "lastname": "Smith", "email": "john.smith@example.net", "city": "Londonderry", "points": 1, "ipAddress": "192.0.2.7"}),
        json!({"firstname": "Jane", "lastname": "Smithson", "email": "jane_s@example.org", "zipcode": "SW1A 1AA"}),
        json!({"city": "Paris", "points": 3}),
    ];
    let mut out = Vec::new();
    for p in people {
        out.push(s.create_contact(p).await);
    }
    out
}

/// Free text finds a contact the moment it is written, by its new values after an edit,
/// never by its old ones, and not once it is deleted — indexed or still queued.
async fn free_text_follows_every_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s
        .create_contact(
            json!({"firstname": "Quintessa", "lastname": "Vantablack", "email": "qv@example.org"}),
        )
        .await;
    let b = s
        .create_contact(json!({"firstname": "Quentin", "lastname": "Vantablack"}))
        .await;
    assert_eq!(search_ids(&s, "vantablack").await, vec![a, b]);
    index_now(&s).await;
    assert_eq!(search_ids(&s, "vantablack").await, vec![a, b]);
    s.patch(
        &format!("/api/contacts/{a}/edit"),
        json!({"lastname": "Ultramarine"}),
    )
    .await
    .expect(200);
    assert_eq!(
        search_ids(&s, "vantablack").await,
        vec![b],
        "the old name is gone at once"
    );
    assert_eq!(
        search_ids(&s, "ultramarine").await,
        vec![a],
        "the new name is found at once"
    );
    index_now(&s).await;
    assert_eq!(search_ids(&s, "vantablack").await, vec![b]);
    assert_eq!(search_ids(&s, "ultramarine").await, vec![a]);
    assert_eq!(search_ids(&s, "qv@exa").await, vec![a]);
    s.delete(&format!("/api/contacts/{b}/delete"))
        .await
        .expect(200);
    assert_eq!(search_ids(&s, "vantablack").await, Vec::<i64>::new());
    let c = s.create_contact(json!({"lastname": "Ultramarine"})).await;
    s.delete(&format!("/api/contacts/{c}/delete"))
        .await
        .expect(200);
    assert_eq!(
        search_ids(&s, "ultramarine").await,
        vec![a],
        "a contact deleted while queued is not found"
    );
    index_now(&s).await;
    assert_eq!(search_ids(&s, "ultramarine").await, vec![a]);
    s.stop().await;
}

/// The free-text index lives in a file of its own (`magpie.db-search`). A server that
/// finds it lost, or out of step with its database (ahead of its queue: an older copy
/// of the database put back; or another database's), rebuilds it at start: every known
/// contact is queued again, searches scan the queue meanwhile, and the indexer refills it.
#[tokio::test]
async fn free_text_index_rebuilt_when_lost_or_out_of_step() {
    let mut s = TestServer::start(Backend::Sqlite).await;
    let a = s
        .create_contact(
            json!({"firstname": "Perpetua", "lastname": "Zinnober", "email": "pz@example.org"}),
        )
        .await;
    let b = s
        .create_contact(json!({"firstname": "Ottilie", "lastname": "Zinnober"}))
        .await;
    let anonymous = s.create_contact(json!({"city": "Zinnober"})).await;
    index_now(&s).await;
    assert_eq!(search_ids(&s, "zinnober").await, vec![a, b], "indexed");

    // Lost.
    let before = queued_ever(&s).await;
    s.halt().await;
    for suffix in ["-search", "-search-wal", "-search-shm"] {
        let _ = std::fs::remove_file(s.data_dir.join(format!("magpie.db{suffix}")));
    }
    s.resume().await;
    // Counted by the queue's sequence: the background indexer may have run already.
    assert_eq!(
        queued_ever(&s).await,
        before + 2,
        "both known contacts are queued again"
    );
    assert_eq!(search_ids(&s, "zinnober").await, vec![a, b], "queued");
    index_now(&s).await;
    assert_eq!(
        search_ids(&s, "zinnober").await,
        vec![a, b],
        "indexed again"
    );
    assert_eq!(search_ids(&s, "pz@exam").await, vec![a]);

    // Ahead of its queue, then another database's.
    let out_of_step = [
        "UPDATE free_text_state SET indexed_seq = indexed_seq + 1000",
        "UPDATE magpie.free_text_generation SET generation = 'another'",
    ];
    for sql in out_of_step {
        let before = queued_ever(&s).await;
        s.halt().await;
        let store = magpie::store::Store::connect(&s.database_url)
            .await
            .unwrap();
        if sql.contains("magpie.") {
            let mut tx = store.begin().await.unwrap();
            tx.execute(&sql.replace("magpie.", ""), vec![])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        } else {
            let mut index = store.begin_free_text().await.unwrap().unwrap();
            index.execute(sql, vec![]).await.unwrap();
            index.commit().await.unwrap();
        }
        store.close().await;
        s.resume().await;
        assert_eq!(queued_ever(&s).await, before + 2, "{sql}: queued again");
        assert_eq!(
            search_ids(&s, "zinnober").await,
            vec![a, b],
            "{sql}: queued"
        );
        index_now(&s).await;
        assert_eq!(
            search_ids(&s, "zinnober").await,
            vec![a, b],
            "{sql}: indexed"
        );
    }

    // Changes and deletions after the rebuild.
    s.patch(
        &format!("/api/contacts/{a}/edit"),
        json!({"lastname": "Scharlach"}),
    )
    .await
    .expect(200);
    assert_eq!(search_ids(&s, "zinnober").await, vec![b], "changed, queued");
    index_now(&s).await;
    assert_eq!(search_ids(&s, "zinnober").await, vec![b]);
    assert_eq!(search_ids(&s, "scharlach").await, vec![a]);
    s.delete(&format!("/api/contacts/{b}/delete"))
        .await
        .expect(200);
    assert_eq!(search_ids(&s, "zinnober").await, Vec::<i64>::new());
    index_now(&s).await;
    assert_eq!(search_ids(&s, "zinnober").await, Vec::<i64>::new());
    let r = s
        .get("/api/contacts?search=is:anonymous%20zinnober")
        .await
        .expect(200);
    assert_eq!(
        ids(&r),
        vec![anonymous],
        "anonymous contacts are searched apart"
    );
    s.stop().await;
}

/// How many entries the free-text queue has ever had.
async fn queued_ever(s: &TestServer) -> i64 {
    let mut db = s.state().store.read().await.unwrap();
    db.fetch_i64(
        "SELECT seq FROM sqlite_sequence WHERE name = 'contacts_fts_pending'",
        vec![],
    )
    .await
    .unwrap()
    .unwrap_or(0)
}

async fn search_grammar(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = seed(&s).await;
    let (ada, alan, grace, john, jane, anon) = (id[0], id[1], id[2], id[3], id[4], id[5]);
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("", vec![ada, alan, grace, john, jane]),
        ("smith", vec![john, jane]),
        ("SMITH", vec![john, jane]),
        ("+smith", vec![john]),
        ("\"john smith\"", vec![john]),
        ("london", vec![ada, john]),
        ("email:ada@", vec![ada]),
        ("email:A", vec![ada, alan]),
        ("email:%@example.org", vec![ada, jane]),
        ("email:%example.org", vec![ada, grace, jane]),
        // Suffixes: a domain, a part of one, and one reaching into the local part.
        ("email:%@EXAMPLE.org", vec![ada, jane]),
        ("email:%.ORG", vec![ada, grace, jane]),
        ("email:%s@example.org", vec![jane]),
        ("email:%n@example.com", vec![alan]),
        ("email:%@example", vec![]),
        ("!email:%@example.org", vec![alan, grace, john]),
        ("email:+ada@example.org", vec![ada]),
        ("email:jane_", vec![jane]),
        ("name:gr", vec![grace]),
        ("name:\"alan tur\"", vec![alan]),
        ("company:us", vec![grace]),
        ("tag:vip", vec![ada, alan]),
        ("tag:go", vec![alan]),
        ("!tag:vip", vec![grace, john, jane]),
        ("tag:vip !tag:gold", vec![ada]),
        ("tag:vip OR city:new", vec![ada, alan, grace]),
        ("(city:london OR city:man) tag:vip", vec![ada, alan]),
        ("owner:admin", vec![ada]),
        ("is:mine", vec![ada]),
        ("is:unowned", vec![alan, grace, john, jane]),
        ("ip:192.0", vec![john]),
        ("ids:1,3", vec![ada, grace]),
        ("is:anonymous", vec![anon]),
        ("is:anonymous OR tag:gold", vec![alan, anon]),
        ("points:>=40", vec![ada, grace]),
        ("zipcode:sw1a", vec![jane]),
        ("segment:any", vec![]),
        ("common:a+b", vec![]),
        ("nobody-matches-this", vec![]),
    ];
    // Fresh writes (SQLite: still queued for the free-text index), then indexed.
    for round in ["queued", "indexed"] {
        if round == "indexed" {
            index_now(&s).await;
        }
        for (query, want) in &cases {
            let r = s
                .get(&format!(
                    "/api/contacts?limit=100&orderBy=id&orderByDir=asc&search={}",
                    urlencode(query)
                ))
                .await;
            assert_eq!(r.status, 200, "{query}: {}", r.text);
            assert_eq!(&ids(&r.body), want, "search {query:?} ({round})");
        }
    }
    // Default order: most recently active first.
    let r = s
        .get("/api/contacts?search=tag:vip%20OR%20company:us")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec![alan, grace, ada]);
    // Known and anonymous contacts have a last-active index each: one of them, or both
    // sorted together.
    for (query, want) in [
        ("is:anonymous", vec![anon]),
        ("is:anonymous email:a", vec![]),
        ("is:anonymous city:paris", vec![anon]),
        ("is:anonymous OR email:a", vec![alan, ada, anon]),
    ] {
        let r = s
            .get(&format!("/api/contacts?search={}", urlencode(query)))
            .await
            .expect(200);
        assert_eq!(ids(&r), want, "{query}");
    }
    // Totals: `is:unowned` is counted through the index of owned contacts.
    for (query, want) in [("is:unowned", 4), ("!is:unowned", 1), ("is:anonymous", 1)] {
        let r = s
            .get(&format!("/api/contacts?search={}", urlencode(query)))
            .await
            .expect(200);
        assert_eq!(r["total"], want.to_string(), "{query}");
    }
    for bad in [
        "(smith", "\"open", "bogus:x", "is:robot", "ids:x", "smith OR",
    ] {
        let r = s
            .get(&format!("/api/contacts?search={}", urlencode(bad)))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(
            r.error_message().starts_with("invalid search"),
            "{}",
            r.text
        );
    }
    s.stop().await;
}

async fn where_filters_ordering_and_paging(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = seed(&s).await;
    let (ada, alan, grace, john, jane) = (id[0], id[1], id[2], id[3], id[4]);
    let r = s
        .get("/api/contacts?where[0][col]=email&where[0][expr]=eq&where[0][val]=ADA@example.org")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec![ada]);
    let r = s.get("/api/contacts?where[0][col]=points&where[0][expr]=gte&where[0][val]=30&where[1][col]=city&where[1][expr]=neq&where[1][val]=London&orderBy=points&orderByDir=desc").await.expect(200);
    assert_eq!(ids(&r), vec![grace, alan]);
    let r = s.get(&format!("/api/contacts?where[0][col]=id&where[0][expr]=in&where[0][val]={john},{jane}&orderBy=id")).await.expect(200);
    assert_eq!(ids(&r), vec![john, jane]);
    let r = s
        .get("/api/contacts?where[0][col]=company&where[0][expr]=isNull&orderBy=id")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec![ada, alan, john, jane]);
    let r = s.get("/api/contacts?search=example&where[0][col]=lastActive&where[0][expr]=gt&where[0][val]=2024-05-01%2012:00:00&orderBy=lastActive").await.expect(200);
    assert_eq!(ids(&r), vec![grace, alan]);
    // Every operator of Mautic's `where`, on text, number and id columns.
    for (col, expr, val, want) in [
        ("points", "lt", "30", vec![john, jane]),
        ("points", "lte", "30", vec![alan, john, jane]),
        ("points", "gt", "40", vec![ada]),
        ("points", "neq", "1", vec![ada, alan, grace, jane]),
        ("email", "like", "%example.org", vec![ada, grace, jane]),
        ("email", "notLike", "%example.org", vec![alan, john]),
        ("city", "like", "LOND%", vec![ada, john]),
        ("company", "isNotNull", "", vec![grace]),
        ("zipcode", "isNull", "", vec![ada, alan, grace, john]),
        ("city", "notIn", "London,New York", vec![alan, john, jane]),
        (
            "id",
            "notIn",
            &format!("{ada},{alan}"),
            vec![grace, john, jane],
        ),
        ("points", "between", "30,45", vec![alan, grace]),
        ("points", "notBetween", "30,45", vec![ada, john, jane]),
    ] {
        let r = s
            .get(&format!(
                "/api/contacts?where[0][col]={col}&where[0][expr]={expr}&where[0][val]={}&orderBy=id",
                urlencode(val)
            ))
            .await
            .expect(200);
        assert_eq!(ids(&r), want, "{col} {expr} {val}");
    }
    assert_eq!(
        s.get("/api/contacts?where[0][col]=nope&where[0][expr]=eq&where[0][val]=1")
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/api/contacts?where[0][col]=email&where[0][expr]=matches&where[0][val]=1")
            .await
            .status,
        400
    );
    // Groups, as Mautic's PHP client sends them (no col; the group's filters in val):
    // points ≥ 40 OR (city London AND points < 10) — nested, joined with a plain filter.
    let grouped = "where[0][expr]=orX\
        &where[0][val][0][col]=points&where[0][val][0][expr]=gte&where[0][val][0][val]=40\
        &where[0][val][1][expr]=andX\
        &where[0][val][1][val][0][col]=city&where[0][val][1][val][0][expr]=like&where[0][val][1][val][0][val]=London%25\
        &where[0][val][1][val][1][col]=points&where[0][val][1][val][1][expr]=lt&where[0][val][1][val][1][val]=10\
        &where[1][col]=email&where[1][expr]=neq&where[1][val]=grace@navy.example.org";
    let r = s
        .get(&format!("/api/contacts?{grouped}&orderBy=id"))
        .await
        .expect(200);
    assert_eq!(ids(&r), vec![ada, john]);
    for bad in [
        "where[0][expr]=orX",
        "where[0][expr]=andX&where[0][val][0][col]=nope&where[0][val][0][expr]=eq&where[0][val][0][val]=1",
        "where[0][expr]=orX&where[0][val][0][expr]=orX&where[0][val][0][val][0][expr]=orX&where[0][val][0][val][0][val][0][expr]=orX&where[0][val][0][val][0][val][0][val][0][col]=id&where[0][val][0][val][0][val][0][val][0][expr]=eq&where[0][val][0][val][0][val][0][val][0][val]=1",
    ] {
        let r = s.get(&format!("/api/contacts?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    // Mautic's order[0][col] and order[0][dir] are orderBy and orderByDir.
    let r = s
        .get("/api/contacts?order[0][col]=points&order[0][dir]=desc&limit=2")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec![ada, grace]);
    for bad in [
        "order[0][col]=points&order[1][col]=id",
        "order[0][col]=points&orderBy=id",
        "order[0][col]=points&order[0][dir]=up",
        "order[0][col]=nope",
    ] {
        assert_eq!(
            s.get(&format!("/api/contacts?{bad}")).await.status,
            400,
            "{bad}"
        );
    }

    // Paging: total is the whole count, the page is a slice, order is stable.
    let p1 = s
        .get("/api/contacts?orderBy=email&orderByDir=asc&limit=2&start=0")
        .await
        .expect(200);
    let p2 = s
        .get("/api/contacts?orderBy=email&orderByDir=asc&limit=2&start=2")
        .await
        .expect(200);
    assert_eq!(p1["total"], "5");
    assert_eq!(ids(&p1), vec![ada, alan]);
    assert_eq!(ids(&p2), vec![grace, jane]);
    let keys: Vec<&String> = p1["contacts"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec![&ada.to_string(), &alan.to_string()],
        "the object keeps the order"
    );
    assert_eq!(s.get("/api/contacts?orderBy=nope").await.status, 400);
    assert_eq!(s.get("/api/contacts?orderByDir=sideways").await.status, 400);
    assert_eq!(s.get("/api/contacts?limit=5000").await.status, 400);
    assert_eq!(s.get("/api/contacts?start=-1").await.status, 400);
    let minimal = s.get("/api/contacts?minimal=1&limit=1").await.expect(200);
    let first = minimal["contacts"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert!(first.get("tags").is_none() && first.get("fields").is_some());
    s.stop().await;
}

/// The other lists take Mautic's `where`, `order` and `published` too, rather than
/// ignoring them and answering everything.
async fn entity_lists_filter_and_order(backend: Backend) {
    let s = TestServer::start(backend).await;
    for name in ["Acme", "Globex", "Initech"] {
        s.post(
            "/api/companies/new",
            json!({"companyname": name, "companycity": if name == "Acme" { "Oslo" } else { "Rome" }}),
        )
        .await
        .expect(201);
    }
    let names = |v: &Value, list: &str, key: &str| -> Vec<String> {
        let items: Vec<&Value> = match &v[list] {
            Value::Array(a) => a.iter().collect(),
            Value::Object(o) => o.values().collect(),
            other => panic!("{other}"),
        };
        items
            .iter()
            .map(|c| {
                c.pointer(key)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{key} in {c}"))
                    .to_owned()
            })
            .collect()
    };
    let r = s
        .get("/api/companies?where[0][col]=companyname&where[0][expr]=eq&where[0][val]=globex")
        .await
        .expect(200);
    assert_eq!(
        names(&r, "companies", "/fields/all/companyname"),
        ["Globex"]
    );
    let r = s
        .get("/api/companies?where[0][col]=companycity&where[0][expr]=neq&where[0][val]=Oslo&order[0][col]=companyname&order[0][dir]=desc")
        .await
        .expect(200);
    assert_eq!(
        names(&r, "companies", "/fields/all/companyname"),
        ["Initech", "Globex"]
    );
    let r = s
        .get("/api/companies?where[0][expr]=orX&where[0][val][0][col]=companyname&where[0][val][0][expr]=eq&where[0][val][0][val]=Acme&where[0][val][1][col]=companyname&where[0][val][1][expr]=like&where[0][val][1][val]=Ini%25&orderBy=companyname")
        .await
        .expect(200);
    assert_eq!(
        names(&r, "companies", "/fields/all/companyname"),
        ["Acme", "Initech"]
    );
    for bad in [
        "/api/companies?where[0][col]=nope&where[0][expr]=eq&where[0][val]=1",
        "/api/tags?where[0][col]=tag&where[0][expr]=resembles&where[0][val]=x",
        "/api/stages?where[0][col]=weight&where[0][expr]=gt&where[0][val]=heavy",
        "/api/notes?order[0][col]=nope",
        "/api/fields/contact?where[0][col]=colour&where[0][expr]=eq&where[0][val]=red",
    ] {
        let r = s.get(bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }

    // Stages: where on a number, published=1 keeps published ones only.
    for (name, weight, published) in [("Lead", 1, true), ("Customer", 5, true), ("Old", 9, false)] {
        s.post(
            "/api/stages/new",
            json!({"name": name, "weight": weight, "isPublished": published}),
        )
        .await
        .expect(201);
    }
    let r = s
        .get("/api/stages?where[0][col]=weight&where[0][expr]=gte&where[0][val]=5")
        .await
        .expect(200);
    assert_eq!(names(&r, "stages", "/name"), ["Customer", "Old"]);
    let r = s.get("/api/stages?published=1").await.expect(200);
    assert_eq!(names(&r, "stages", "/name"), ["Lead", "Customer"]);
    let r = s
        .get("/api/stages?where[0][col]=isPublished&where[0][expr]=eq&where[0][val]=false")
        .await
        .expect(200);
    assert_eq!(names(&r, "stages", "/name"), ["Old"]);

    // Tags and notes.
    let ada = s
        .create_contact(json!({"email": "ada@example.org", "tags": ["vip", "gold", "new"]}))
        .await;
    let r = s
        .get("/api/tags?where[0][col]=tag&where[0][expr]=in&where[0][val]=vip,new&orderBy=tag&orderByDir=desc")
        .await
        .expect(200);
    assert_eq!(names(&r, "tags", "/tag"), ["vip", "new"]);
    for (text, kind) in [("called", "call"), ("wrote", "email")] {
        s.post(
            "/api/notes/new",
            json!({"lead": ada, "text": text, "type": kind}),
        )
        .await
        .expect(201);
    }
    let r = s
        .get("/api/notes?where[0][col]=type&where[0][expr]=eq&where[0][val]=call")
        .await
        .expect(200);
    assert_eq!(names(&r, "notes", "/text"), ["called"]);

    // Fields: Mautic's search commands, published and ordering.
    let email_id = s
        .get("/api/fields/contact?search=type:email")
        .await
        .expect(200)["fields"][0]["id"]
        .as_i64()
        .unwrap();
    let r = s
        .get(&format!("/api/fields/contact?search=ids:{email_id}"))
        .await
        .expect(200);
    assert_eq!(names(&r, "fields", "/alias"), ["email"]);
    let r = s
        .get("/api/fields/contact?search=group:social&orderBy=alias&orderByDir=desc&limit=2")
        .await
        .expect(200);
    assert_eq!(names(&r, "fields", "/alias"), ["twitter", "skype"]);
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Shoe size", "alias": "shoe_size", "type": "number", "isPublished": false}),
    )
    .await
    .expect(201);
    let all = s.get("/api/fields/contact?search=shoe").await.expect(200);
    assert_eq!(all["total"], 1);
    let published = s
        .get("/api/fields/contact?search=shoe&published=1")
        .await
        .expect(200);
    assert_eq!(published["total"], 0);
    assert_eq!(
        s.get("/api/fields/contact?orderBy=colour").await.status,
        400
    );
    // Mautic's where on the fields' properties, as its PHP client sends it.
    let r = s
        .get("/api/fields/contact?where[0][col]=f.alias&where[0][expr]=in&where[0][val]=email,city&where[1][col]=label&where[1][expr]=isNotEmpty")
        .await
        .expect(200);
    let mut got = names(&r, "fields", "/alias");
    got.sort();
    assert_eq!(got, ["city", "email"]);
    let r = s
        .get("/api/fields/contact?where[0][col]=isPublished&where[0][expr]=eq&where[0][val]=false")
        .await
        .expect(200);
    assert_eq!(names(&r, "fields", "/alias"), ["shoe_size"]);
    s.stop().await;
}

async fn search_is_never_an_injection(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed(&s).await;
    for hostile in [
        "'; DROP TABLE contacts; --",
        "email:' OR '1'='1",
        "\" OR 1=1 --",
        "name:%' UNION SELECT password_hash FROM users --",
        "tag:\\",
        "city:%%%_%",
        "\u{202e}evil",
    ] {
        let r = s
            .get(&format!("/api/contacts?search={}", urlencode(hostile)))
            .await;
        assert!(r.status == 200 || r.status == 400, "{hostile}: {}", r.text);
        if r.status == 200 {
            assert!(r.body["total"].as_str().unwrap().parse::<i64>().unwrap() <= 5);
        }
    }
    assert_eq!(
        s.get("/api/contacts").await.expect(200)["total"],
        "5",
        "still all there"
    );
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
