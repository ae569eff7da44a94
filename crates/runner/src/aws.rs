//! One AWS SDK configuration, and the sink built on it.

use anyhow::bail;
use aws_config::BehaviorVersion;
use shardline_producer::{DeadLetterFile, FirehoseDestination, KinesisDestination, Producer};
use shardline_source::{Sink, StdoutSink};

use crate::settings::{Destination, Settings};

/// The SDK configuration (region, credentials, endpoints) every AWS client
/// of the process shares: loaded once, at start-up.
pub async fn sdk_config(settings: &Settings) -> anyhow::Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        bail!("no AWS region: give --region or set AWS_REGION");
    }
    Ok(sdk)
}

/// The producer for the destination (checked to exist first, so a typo in
/// a stream name fails at start-up), or stdout.
pub async fn sink(
    settings: &Settings,
    sdk: Option<&aws_config::SdkConfig>,
    dead_letters: DeadLetterFile,
) -> anyhow::Result<Sink> {
    let Some(sdk) = sdk.filter(|_| settings.destination != Destination::Stdout) else {
        return Ok(Sink::Stdout(StdoutSink::new(dead_letters)));
    };
    let builder = match &settings.destination {
        Destination::Kinesis(name) => {
            let client = aws_sdk_kinesis::Client::new(sdk);
            client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .map_err(|e| describe_aws_error(e, &format!("Kinesis stream {name}")))?;
            Producer::builder(KinesisDestination::new(&client, name), dead_letters)
        }
        Destination::Firehose(name) => {
            let client = aws_sdk_firehose::Client::new(sdk);
            client
                .describe_delivery_stream()
                .delivery_stream_name(name)
                .send()
                .await
                .map_err(|e| describe_aws_error(e, &format!("Firehose delivery stream {name}")))?;
            Producer::builder(FirehoseDestination::new(&client, name), dead_letters)
        }
        Destination::Stdout => bail!("stdout has no producer"),
    };
    Ok(Sink::Producer(
        builder.config(settings.producer.clone()).build()?,
    ))
}

/// A clear message for a failed start-up call: a missing stream, missing
/// credentials, an unreachable endpoint.
pub fn describe_aws_error<E, R>(
    error: aws_sdk_kinesis::error::SdkError<E, R>,
    what: &str,
) -> anyhow::Error
where
    E: std::error::Error + aws_sdk_kinesis::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_kinesis::error::SdkError;
    let detail = aws_sdk_kinesis::error::DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ResourceNotFoundException") => {
                anyhow::anyhow!("{what} does not exist (in this account and region)")
            }
            Some(code) => anyhow::anyhow!(
                "{what}: {code}: {}",
                service.err().message().unwrap_or_default()
            ),
            None => anyhow::anyhow!("{what}: {detail}"),
        },
        _ if detail.contains("credentials") => anyhow::anyhow!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available ({detail})"
        ),
        _ => anyhow::anyhow!("cannot reach {what}: {detail}"),
    }
}
