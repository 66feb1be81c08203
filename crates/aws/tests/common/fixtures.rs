//! Setup calls the tests need but baton never makes (create a VPC, run instances, create
//! load balancers, EKS clusters), made with the SDK directly against moto.

use aws_config::BehaviorVersion;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_smithy_http_client::tls;

/// SDK clients on this binary's moto server.
#[derive(Debug, Clone)]
pub struct Sdk {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub eks: aws_sdk_eks::Client,
}

pub async fn sdk() -> Sdk {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(super::moto::endpoint())
        .region(aws_types::region::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing",
            super::SECRET,
            None,
            None,
            "tests",
        ))
        .load()
        .await;
    Sdk {
        ec2: aws_sdk_ec2::Client::new(&conf),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&conf),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&conf),
        eks: aws_sdk_eks::Client::new(&conf),
    }
}

/// A fresh VPC for one test.
pub async fn vpc(sdk: &Sdk, cidr: &str) -> String {
    sdk.ec2
        .create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .expect("create VPC")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("VPC id")
        .to_owned()
}

/// A subnet in `vpc_id`.
pub async fn subnet(sdk: &Sdk, vpc_id: &str, az: &str, cidr: &str) -> String {
    sdk.ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .availability_zone(az)
        .cidr_block(cidr)
        .send()
        .await
        .expect("create subnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned()
}

/// One instance in `subnet_id`, tagged `key=value`; each call is its own reservation.
pub async fn instance(sdk: &Sdk, subnet_id: &str, key: &str, value: &str) -> String {
    sdk.ec2
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet_id)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key(key).value(value).build())
                .build(),
        )
        .send()
        .await
        .expect("run instance")
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .expect("instance id")
        .to_owned()
}
