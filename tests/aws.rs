//! The AWS service integrations through the daemon against moto server (an AWS API emulator
//! started by each test on a free loopback port), checked with boto3 as a user would: an SQS
//! message sent and read back, an SNS publish seen by an SQS subscription, DynamoDB items
//! written, read, updated on a condition and deleted, an EventBridge event routed by a rule to
//! a queue with the execution's ARNs in its resources, a failed entry and a missing queue
//! caught by name, and a `.waitForTaskToken` through SQS completed by a boto3 consumer.

use serde_json::{json, Value};
use std::time::Duration;

mod common;
use common::{aws_env, start, wait_for_status, workflows, Daemon, Moto, ACCOUNT_ARN};

fn task(resource: &str, params: Value, extra: Value) -> Value {
    let mut t =
        json!({"Type": "Task", "Resource": format!("arn:aws:states:::{resource}"), "Parameters": params});
    t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    t
}

fn daemon(dir: &std::path::Path, moto: &Moto) -> Daemon {
    let config = format!("[aws]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n", moto.endpoint());
    Daemon::start(dir, &config, &aws_env())
}

fn output(d: &Daemon, arn: &str) -> Value {
    let e = wait_for_status(d, arn, "SUCCEEDED", Duration::from_secs(30));
    serde_json::from_str(e["output"].as_str().unwrap()).unwrap()
}

const SETUP: &str = r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1")
sqs, sns, ddb, events = (boto3.client(s, **kw) for s in ("sqs", "sns", "dynamodb", "events"))
q = sqs.create_queue(QueueName="orders")["QueueUrl"]
fan = sqs.create_queue(QueueName="fanout")["QueueUrl"]
seen = sqs.create_queue(QueueName="seen")["QueueUrl"]
fan_arn = sqs.get_queue_attributes(QueueUrl=fan, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
seen_arn = sqs.get_queue_attributes(QueueUrl=seen, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
topic = sns.create_topic(Name="alerts")["TopicArn"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=fan_arn, Attributes={"RawMessageDelivery": "true"})
ddb.create_table(TableName="devices", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                 AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
events.put_rule(Name="readings", EventPattern=json.dumps({"source": ["edge.sensors"]}))
events.put_targets(Rule="readings", Targets=[{"Id": "seen", "Arn": seen_arn}])
print(json.dumps({"queue": q, "fanout": fan, "seen": seen, "topic": topic}))
"#;

/// Reads up to `n` messages of a queue (waiting a little for them).
const RECEIVE: &str = r#"
import json, sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
got = []
for _ in range(10):
    r = sqs.receive_message(QueueUrl=sys.argv[2], MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"])
    for m in r.get("Messages", []):
        got.append({"body": m["Body"], "attributes": {k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}})
        sqs.delete_message(QueueUrl=sys.argv[2], ReceiptHandle=m["ReceiptHandle"])
    if len(got) >= int(sys.argv[3]):
        break
print(json.dumps(got))
"#;

#[test]
fn sqs_sns_dynamodb_and_eventbridge_tasks_reach_the_services() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let r = moto.boto3(SETUP, &[]);
    let (queue, fanout, seen, topic) = (
        r["queue"].as_str().unwrap().to_string(),
        r["fanout"].as_str().unwrap().to_string(),
        r["seen"].as_str().unwrap().to_string(),
        r["topic"].as_str().unwrap().to_string(),
    );
    let key = json!({"id": {"S": "d-1"}});
    let def = json!({
        "StartAt": "Send",
        "States": {
            "Send": task("sqs:sendMessage", json!({
                "QueueUrl": queue, "MessageBody": {"order": 7},
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "new"}}
            }), json!({"ResultPath": "$.sent", "Next": "Publish"})),
            "Publish": task("sns:publish", json!({"TopicArn": topic, "Message": "hot in the kitchen"}),
                json!({"ResultPath": "$.published", "Next": "Put"})),
            "Put": task("dynamodb:putItem", json!({"TableName": "devices", "Item": {"id": {"S": "d-1"}, "temp": {"N": "21"}, "tags": {"SS": ["a"]}}}),
                json!({"ResultPath": null, "Next": "Update"})),
            "Update": task("dynamodb:updateItem", json!({
                "TableName": "devices", "Key": key, "UpdateExpression": "SET #t = :t", "ExpressionAttributeNames": {"#t": "temp"},
                "ConditionExpression": "#t = :old", "ExpressionAttributeValues": {":t": {"N": "30"}, ":old": {"N": "21"}},
                "ReturnValues": "ALL_NEW"
            }), json!({"ResultPath": "$.updated", "Next": "UpdateAgain"})),
            // The same condition again no longer holds: caught by its name.
            "UpdateAgain": task("dynamodb:updateItem", json!({
                "TableName": "devices", "Key": key, "UpdateExpression": "SET #t = :t", "ExpressionAttributeNames": {"#t": "temp"},
                "ConditionExpression": "#t = :old", "ExpressionAttributeValues": {":t": {"N": "40"}, ":old": {"N": "21"}}
            }), json!({"Catch": [{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "ResultPath": "$.conflict", "Next": "Get"}], "Next": "Get"})),
            "Get": task("dynamodb:getItem", json!({"TableName": "devices", "Key": key}), json!({"ResultPath": "$.got", "Next": "Delete"})),
            "Delete": task("dynamodb:deleteItem", json!({"TableName": "devices", "Key": key}), json!({"ResultPath": null, "Next": "GetGone"})),
            "GetGone": task("dynamodb:getItem", json!({"TableName": "devices", "Key": key}), json!({"ResultPath": "$.gone", "Next": "Events"})),
            "Events": task("events:putEvents", json!({"Entries": [
                {"Source": "edge.sensors", "DetailType": "reading", "Detail": {"temp": 30}, "Resources": ["device/d-1"]}
            ]}), json!({"ResultPath": "$.events", "Next": "BadEvent"})),
            // Retried once, then caught.
            "BadEvent": task("events:putEvents", json!({"Entries": [{"DetailType": "reading", "Detail": {"temp": 1}}]}),
                json!({"Retry": [{"ErrorEquals": ["EventBridge.FailedEntry"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                       "Catch": [{"ErrorEquals": ["EventBridge.FailedEntry"], "ResultPath": "$.failedEntry", "Next": "NoQueue"}], "Next": "NoQueue"})),
            "NoQueue": task("sqs:sendMessage", json!({"QueueUrl": format!("{}/123456789012/nowhere", moto.endpoint()), "MessageBody": "x"}),
                json!({"Catch": [{"ErrorEquals": ["SQS.QueueDoesNotExistException"], "ResultPath": "$.noQueue", "Next": "Done"}], "Next": "Done"})),
            "Done": {"Type": "Pass", "End": true}
        }
    });
    workflows(dir.path(), &[("services", def)]);
    let d = daemon(dir.path(), &moto);
    let arn = start(&d, "services", "s1", json!({}));
    let out = output(&d, &arn);

    // SQS: the answer as AWS's integration gives it, and the message in the queue.
    assert_eq!(out["sent"]["MD5OfMessageBody"], md5_of("{\"order\":7}"));
    assert!(out["sent"]["MessageId"].is_string());
    assert_eq!(out["sent"]["SdkHttpMetadata"]["HttpStatusCode"], 200);
    let got = moto.boto3(RECEIVE, &[&queue, "1"]);
    assert_eq!(got, json!([{"body": "{\"order\":7}", "attributes": {"kind": "new"}}]));
    // SNS: the topic's SQS subscription received it.
    assert!(out["published"]["MessageId"].is_string());
    let got = moto.boto3(RECEIVE, &[&fanout, "1"]);
    assert_eq!(got[0]["body"], "hot in the kitchen");
    // DynamoDB.
    assert_eq!(
        out["updated"]["Attributes"],
        json!({"id": {"S": "d-1"}, "tags": {"SS": ["a"]}, "temp": {"N": "30"}})
    );
    assert_eq!(out["conflict"]["Error"], "DynamoDB.ConditionalCheckFailedException");
    let cause = out["conflict"]["Cause"].as_str().unwrap();
    assert!(
        cause.contains(
            "(Service: AmazonDynamoDBv2; Status Code: 400; Error Code: ConditionalCheckFailedException;"
        ),
        "{cause}"
    );
    assert_eq!(out["got"]["Item"]["temp"], json!({"N": "30"}));
    assert_eq!(out["got"]["SdkHttpMetadata"]["HttpHeaders"]["Content-Type"], "application/x-amz-json-1.0");
    assert!(out["gone"].get("Item").is_none(), "{}", out["gone"]);
    // EventBridge: the event reached the rule's queue, with the execution's ARNs appended.
    assert_eq!(out["events"]["FailedEntryCount"], 0);
    let got = moto.boto3(RECEIVE, &[&seen, "1"]);
    let event: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["detail"], json!({"temp": 30}));
    assert_eq!(
        event["resources"],
        json!(["device/d-1", format!("{ACCOUNT_ARN}:stateMachine:services"), arn])
    );
    assert_eq!(out["failedEntry"]["Error"], "EventBridge.FailedEntry");
    let failed: Value = serde_json::from_str(out["failedEntry"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(failed["FailedEntryCount"], 1);
    assert_eq!(out["noQueue"]["Error"], "SQS.QueueDoesNotExistException");
    // Each connector's calls in /metrics: the good event, and the bad one twice.
    let calls = |c: &str, outcome: &str| {
        d.metric(&format!("stepgate_task_calls_total{{connector=\"{c}\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!((calls("events", "ok"), calls("events", "error")), (1.0, 2.0));
    assert_eq!((calls("dynamodb", "ok"), calls("dynamodb", "error")), (5.0, 1.0));
}

/// A consumer of the queue answers the token it finds in the message.
const CONSUMER: &str = r#"
import json, sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
sfn = boto3.client("stepfunctions", endpoint_url=sys.argv[3], region_name="us-east-1")
for _ in range(30):
    r = sqs.receive_message(QueueUrl=sys.argv[2], WaitTimeSeconds=1)
    if r.get("Messages"):
        body = json.loads(r["Messages"][0]["Body"])
        sfn.send_task_success(taskToken=body["token"], output=json.dumps({"approved": body["order"]}))
        print(json.dumps({"answered": body["order"]}))
        break
"#;

#[test]
fn a_callback_through_sqs_is_answered_by_a_boto3_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let r = moto.boto3(SETUP, &[]);
    let queue = r["queue"].as_str().unwrap().to_string();
    let def = json!({"StartAt": "Ask", "States": {"Ask": task("sqs:sendMessage.waitForTaskToken",
        json!({"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"}}), json!({"End": true}))}});
    workflows(dir.path(), &[("approve", def)]);
    let d = daemon(dir.path(), &moto);
    let arn = start(&d, "approve", "a1", json!({"order": 9}));
    let answered = moto.boto3(CONSUMER, &[&queue, &d.endpoint()]);
    assert_eq!(answered, json!({"answered": 9}));
    assert_eq!(output(&d, &arn), json!({"approved": 9}));
}

fn md5_of(text: &str) -> String {
    use md5::Digest;
    format!("{:x}", md5::Md5::digest(text.as_bytes()))
}
