//! AWS clients (S3 for backups, Route 53 for GeoDNS), built one way: rustls on
//! ring as the HTTPS client, credentials from geoctl's configuration (which
//! already reads `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, their `_FILE`
//! forms and the config file) or else the standard AWS chain, and the
//! region from `AWS_REGION`/`aws.region` or the chain.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use aws_smithy_http_client::tls;

use crate::config::Aws;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{0}")]
    Input(String),
}

impl crate::error::Coded for AwsError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            AwsError::Input(_) => crate::error::Exit::Input,
        }
    }
}

/// The shared SDK configuration: region, credentials, HTTP client, timeouts.
pub async fn sdk_config(aws: &Aws) -> Result<SdkConfig, AwsError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(60))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http).timeout_config(timeouts);
    if let Some(region) = &aws.region {
        loader = loader.region(Region::new(region.value.clone()));
    }
    match (&aws.access_key_id, &aws.secret_access_key) {
        (Some(id), Some(secret)) => {
            let credentials = Credentials::new(id.value.expose(), secret.value.expose(), None, None, "geoctl-config");
            loader = loader.credentials_provider(credentials);
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(AwsError::Input(
                "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both (or their _FILE forms), \
                 or neither to use the standard AWS credential chain"
                    .into(),
            ))
        }
        (None, None) => {}
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(AwsError::Input("no AWS region configured; set AWS_REGION or aws.region in geoctl.yaml".into()));
    }
    Ok(config)
}

/// An S3 client; with `S3_ENDPOINT` set, path-style addressing for S3-compatible stores.
pub async fn s3(aws: &Aws) -> Result<aws_sdk_s3::Client, AwsError> {
    let shared = sdk_config(aws).await?;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(endpoint) = &aws.s3_endpoint {
        builder = builder.endpoint_url(endpoint.value.clone()).force_path_style(true);
    }
    Ok(aws_sdk_s3::Client::from_conf(builder.build()))
}

/// A Route 53 client; `ROUTE53_ENDPOINT` points it at a compatible server.
pub async fn route53(aws: &Aws) -> Result<aws_sdk_route53::Client, AwsError> {
    let shared = sdk_config(aws).await?;
    let mut builder = aws_sdk_route53::config::Builder::from(&shared);
    if let Some(endpoint) = &aws.route53_endpoint {
        builder = builder.endpoint_url(endpoint.value.clone());
    }
    Ok(aws_sdk_route53::Client::from_conf(builder.build()))
}

/// The message of an SDK error without its debug noise: the service's error
/// code and message, or the transport failure. AWS errors never echo the
/// secret key, so nothing here needs scrubbing.
pub fn describe<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => e.to_string(),
            }
        }
        SdkError::DispatchFailure(failure) => {
            let timed_out = if failure.is_timeout() { " (timed out)" } else { "" };
            match std::error::Error::source(err) {
                Some(cause) => format!("cannot reach the endpoint{timed_out}: {}", crate::error::chain(cause)),
                None => format!("cannot reach the endpoint{timed_out}"),
            }
        }
        SdkError::TimeoutError(_) => "the request timed out".into(),
        other => crate::error::chain(other),
    }
}

/// The service's error code, when the service answered.
pub fn code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}
