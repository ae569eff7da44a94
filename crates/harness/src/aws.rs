//! How clients reach the harness: the standard AWS settings.

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};

/// The region every harness service answers in.
pub const REGION: &str = "us-east-1";
/// Dummy credentials: the emulators accept any, the SDK insists on some.
pub const DUMMY_ACCESS_KEY_ID: &str = "AKIDSHARDLINETEST";
/// See [`DUMMY_ACCESS_KEY_ID`].
pub const DUMMY_SECRET_ACCESS_KEY: &str = "shardline-test-secret";

/// The endpoint of each AWS service a harness run serves.
///
/// [`AwsEndpoints::env`] turns them into the standard AWS environment
/// variables (`AWS_ENDPOINT_URL_KINESIS`, ...) for a child process — the same
/// variables a user sets to point shardline at LocalStack or a VPC endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsEndpoints {
    pub kinesis: Option<String>,
    pub firehose: Option<String>,
    pub s3: Option<String>,
    pub cloudwatch: Option<String>,
}

impl AwsEndpoints {
    /// The environment for a child process: region, dummy credentials, and
    /// one `AWS_ENDPOINT_URL_<SERVICE>` per endpoint that is set.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_REGION".to_owned(), REGION.to_owned()),
            (
                "AWS_ACCESS_KEY_ID".to_owned(),
                DUMMY_ACCESS_KEY_ID.to_owned(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                DUMMY_SECRET_ACCESS_KEY.to_owned(),
            ),
            // Never read the developer's real profile or IMDS by accident.
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
            ("AWS_CONFIG_FILE".to_owned(), "/dev/null".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
                "/dev/null".to_owned(),
            ),
        ];
        let services = [
            ("KINESIS", &self.kinesis),
            ("FIREHOSE", &self.firehose),
            ("S3", &self.s3),
            ("CLOUDWATCH", &self.cloudwatch),
        ];
        for (service, endpoint) in services {
            if let Some(url) = endpoint {
                env.push((format!("AWS_ENDPOINT_URL_{service}"), url.clone()));
            }
        }
        env
    }
}

/// The SDK configuration of a client of `endpoint`: region, dummy
/// credentials and the endpoint, as [`AwsEndpoints::env`] gives a child
/// process. Build any service's client from it, adjusting what the test
/// needs (retries off, a short timeout):
///
/// ```
/// let config = shardline_harness::sdk_config("http://127.0.0.1:4567");
/// let kinesis = aws_sdk_kinesis::Client::new(&config);
/// # let _ = kinesis;
/// ```
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let credentials = Credentials::new(
        DUMMY_ACCESS_KEY_ID,
        DUMMY_SECRET_ACCESS_KEY,
        None,
        None,
        "shardline-harness",
    );
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .endpoint_url(endpoint)
        .build()
}

/// An S3 client of `endpoint`, path-style (moto serves every bucket on one
/// host).
pub(crate) fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config(endpoint))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
