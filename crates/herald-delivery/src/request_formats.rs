//! The requests of each payload format and content type: their content type, their
//! signature headers, and signatures that verify as each format's receivers verify.

use std::sync::Arc;

use chrono::Utc;
use herald_core::format::form_body;
use herald_core::{
    para, webhook_id, AppId, Body, ContentType, Event, EventFilter, EventType, ObjectType,
    ObjectTypeFilter, PayloadFormat, Subscription,
};

use crate::PreparedRoute;

fn event() -> Event {
    Event::new(
        AppId::parse("shop").unwrap(),
        EventType::parse("invoice.paid").unwrap(),
        ObjectType::parse("invoice").unwrap(),
        serde_json::json!({"id": "inv 1", "total": 3}),
    )
}

fn subscription(format: PayloadFormat, content_type: ContentType) -> Subscription {
    let mut s = Subscription::new(
        AppId::parse("shop").unwrap(),
        "https://hooks.example.com/in",
        EventFilter::All,
        ObjectTypeFilter::All,
    );
    s.format = format;
    s.content_type = content_type;
    s.headers
        .insert("X-Webhook-Signature".into(), "forged".into());
    s
}

/// The URL-decoded value of the one `payload` field of a form body.
fn payload_field(body: &[u8]) -> Vec<u8> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    assert_eq!(fields.len(), 1, "one field");
    assert_eq!(fields[0].0, "payload");
    fields[0].1.clone().into_bytes()
}

#[test]
fn standard_deliveries_sign_the_bytes_they_send_in_either_content_type() {
    for content_type in [ContentType::Json, ContentType::Form] {
        let sub = subscription(PayloadFormat::Standard, content_type);
        let prepared = Arc::new(PreparedRoute::new(sub.route()));
        let event = event();
        let body = Body::of(&event, PayloadFormat::Standard, content_type);
        let request = prepared.sign(webhook_id(&event.id, &sub.id), body.clone(), Utc::now());
        let headers = request.headers().unwrap();
        assert_eq!(headers["content-type"], content_type.mime());
        assert!(headers.get("x-para-event").is_none());
        assert_eq!(
            headers["x-webhook-signature"], "forged",
            "a custom header, kept"
        );
        // The reference library verifies the raw body, form or JSON.
        standardwebhooks::Webhook::new(&sub.secrets[0].expose())
            .unwrap()
            .verify(&request.body, &headers)
            .unwrap();
        let envelope = herald_core::Envelope::body_of(&event);
        match content_type {
            ContentType::Json => assert_eq!(request.body, envelope),
            ContentType::Form => assert_eq!(payload_field(&request.body), envelope.to_vec()),
        }
    }
}

#[test]
fn para_deliveries_sign_the_payload_json_as_para_does_in_either_content_type() {
    for content_type in [ContentType::Json, ContentType::Form] {
        let sub = subscription(PayloadFormat::Para, content_type);
        let prepared = Arc::new(PreparedRoute::new(sub.route()));
        let event = event();
        let body = Body::of(&event, PayloadFormat::Para, content_type);
        let id = webhook_id(&event.id, &sub.id);
        let request = prepared.sign(id, body, Utc::now());
        let headers = request.headers().unwrap();
        assert_eq!(headers["content-type"], content_type.mime());
        assert_eq!(headers["x-para-event"], "invoice.paid");
        assert_eq!(headers["webhook-id"], id.as_str(), "kept for dedupe");
        assert!(headers.get("webhook-signature").is_none());
        assert!(headers.get("webhook-timestamp").is_none());
        assert_eq!(headers.get_all("x-webhook-signature").iter().count(), 1);
        // What Para's receivers do: the payload (the body, or the form field decoded),
        // then Base64(HmacSHA256(payload, secret)).
        let payload = match content_type {
            ContentType::Json => request.body.to_vec(),
            ContentType::Form => {
                assert_eq!(request.body, form_body(&para::payload_of(&event)));
                payload_field(&request.body)
            }
        };
        assert_eq!(payload, para::payload_of(&event).to_vec());
        assert_eq!(
            headers["x-webhook-signature"],
            para::sign(&sub.secrets[0], &payload).as_str()
        );
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["items"][0]["id"], "inv 1");
        assert_eq!(json["appid"], "shop");
    }
}
