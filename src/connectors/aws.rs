//! What the AWS service integrations share (EventBridge, SQS, SNS and DynamoDB, each in its
//! own module beside this one): the `[aws]` settings (endpoint and region; `[eventbridge]`
//! overrides them for EventBridge), the SDK configuration with the AWS default credential
//! chain (environment, profile, instance role), loaded at the first call so that a daemon
//! that calls no AWS service never looks for credentials, and AWS's way of reporting a
//! service's refusal as a Task failure (`SQS.QueueDoesNotExistException`, with the cause the
//! Java SDK words on AWS).

use crate::error::Failure;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::RequestId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// `[aws]` (and `[eventbridge]`): where the AWS services are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// One endpoint for every service (an emulator such as moto). Default: AWS's endpoint of
    /// each service for the region.
    pub endpoint_url: Option<String>,
    /// Default: the top-level region.
    pub region: Option<String>,
}

/// The SDK configuration of one set of settings, loaded once.
pub struct Sdk {
    endpoint_url: Option<String>,
    region: String,
    loaded: OnceCell<aws_config::SdkConfig>,
}

impl Sdk {
    pub fn new(settings: &AwsConfig, default_region: &str) -> Arc<Sdk> {
        Arc::new(Sdk {
            endpoint_url: settings.endpoint_url.clone(),
            region: settings.region.clone().unwrap_or_else(|| default_region.to_string()),
            loaded: OnceCell::new(),
        })
    }

    /// The SDK configuration: credentials from the default chain, over rustls with ring.
    pub async fn config(&self) -> &aws_config::SdkConfig {
        self.loaded
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(http)
                    .region(aws_config::Region::new(self.region.clone()));
                if let Some(url) = &self.endpoint_url {
                    loader = loader.endpoint_url(url.clone());
                }
                loader.load().await
            })
            .await
    }
}

/// How a service names its errors in a Task failure: `SQS.QueueDoesNotExistException`, and
/// `SQS.AmazonSQSException` for an error its SDK does not model; the cause names it as the
/// Java SDK does (`Service: AmazonSQS`).
pub struct Service {
    pub prefix: &'static str,
    pub name: &'static str,
    pub base_exception: &'static str,
}

/// A failed call as the Task's failure.
pub fn failure<E>(service: &Service, e: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + std::fmt::Debug + 'static,
{
    match e {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let err = ctx.err();
            // The SDK's error enum names a modeled error by its shape (`QueueDoesNotExist(..)`)
            // and any other `Unhandled(..)`.
            let shape = format!("{err:?}");
            let shape = shape.split(['(', ' ', '{']).next().unwrap_or_default();
            let name = match shape {
                "" | "Unhandled" => service.base_exception.to_string(),
                s if s.ends_with("Exception") => s.to_string(),
                s => format!("{s}Exception"),
            };
            let code = err.code().unwrap_or(shape);
            let message = err.message().unwrap_or_default();
            let request_id = err.request_id().unwrap_or_default();
            Failure::new(
                format!("{}.{name}", service.prefix),
                format!(
                    "{message} (Service: {}; Status Code: {status}; Error Code: {code}; Request ID: {request_id}; Proxy: null)",
                    service.name
                ),
            )
        }
        other => Failure::new(
            crate::error::names::TASK_FAILED,
            format!("{} could not be called: {}", service.name, DisplayErrorContext(&other)),
        ),
    }
}

/// A refusal in the service's own words, for a request AWS refuses whatever the service's
/// state (a required member missing): `kind` is the exception name's stem, `code` the error
/// code the service answers.
pub fn refused(service: &Service, name: &str, code: &str, message: &str) -> Failure {
    Failure::new(
        format!("{}.{name}", service.prefix),
        format!(
            "{message} (Service: {}; Status Code: 400; Error Code: {code}; Request ID: {}; Proxy: null)",
            service.name,
            uuid::Uuid::new_v4()
        ),
    )
}

/// AWS's validation message for a required member that is missing.
pub fn missing(member: &str) -> String {
    format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null")
}
