//! One AWS SDK configuration, and the sink built on it.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use shardline_core::{DeadLetterFile, Sink};
use shardline_pipeline::StdoutSink;
use shardline_producer::{FirehoseDestination, KinesisDestination, Producer};

use crate::RunError;
use crate::settings::{Destination, Settings};

/// The SDK configuration (region, credentials, endpoints) every AWS client
/// of the process shares: loaded once, at start-up.
pub async fn sdk_config(settings: &Settings) -> Result<aws_config::SdkConfig, RunError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(RunError::NoRegion);
    }
    Ok(sdk)
}

/// The producer for the destination (checked to exist first, so a typo in
/// a stream name fails at start-up), or stdout.
pub(crate) async fn sink(
    settings: &Settings,
    sdk: Option<&aws_config::SdkConfig>,
    dead_letters: DeadLetterFile,
) -> Result<Arc<dyn Sink>, RunError> {
    let builder = match (&settings.destination, sdk) {
        (Destination::Stdout, _) => return Ok(Arc::new(StdoutSink::new(dead_letters))),
        (_, None) => return Err(RunError::NoRegion),
        (Destination::Kinesis(name), Some(sdk)) => {
            let client = aws_sdk_kinesis::Client::new(sdk);
            client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .map_err(|e| describe_aws_error(e, &format!("Kinesis stream {name}")))?;
            Producer::builder(KinesisDestination::new(&client, name)).dead_letters(dead_letters)
        }
        (Destination::Firehose(name), Some(sdk)) => {
            let client = aws_sdk_firehose::Client::new(sdk);
            client
                .describe_delivery_stream()
                .delivery_stream_name(name)
                .send()
                .await
                .map_err(|e| describe_aws_error(e, &format!("Firehose delivery stream {name}")))?;
            Producer::builder(FirehoseDestination::new(&client, name)).dead_letters(dead_letters)
        }
    };
    // Checked above, with messages for each way a start-up call fails.
    let builder = builder
        .config(settings.producer.clone())
        .check_destination(false);
    Ok(Arc::new(builder.build().await?))
}

/// A clear message for a failed start-up call: a missing stream, missing
/// credentials, an unreachable endpoint.
pub fn describe_aws_error<E, R>(
    error: aws_sdk_kinesis::error::SdkError<E, R>,
    what: &str,
) -> RunError
where
    E: std::error::Error + aws_sdk_kinesis::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_kinesis::error::SdkError;
    let detail = aws_sdk_kinesis::error::DisplayErrorContext(&error).to_string();
    let what = what.to_owned();
    match &error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ResourceNotFoundException") => RunError::NotFound { what },
            Some(code) => RunError::Service {
                what,
                code: code.to_owned(),
                message: service.err().message().unwrap_or_default().to_owned(),
            },
            None => RunError::Unreachable { what, detail },
        },
        _ if detail.contains("credentials") => RunError::NoCredentials { detail },
        _ => RunError::Unreachable { what, detail },
    }
}
