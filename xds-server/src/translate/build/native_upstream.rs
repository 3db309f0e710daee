//! Upstream filters of a cluster that needs no upstream leg for OpenAI requests
//! ([`NativeUpstreamIr`]): the leg behind a matcher that skips it for `/v1/` requests, Envoy's
//! header mutation, the key from an SDS secret, then the codec.

use envoy_types::pb::envoy::config::common::mutation_rules::v3::{HeaderMutation, header_mutation};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, TypedExtensionConfig, data_source::Specifier,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::extensions::common::matching::v3::ExtensionWithMatcher;
use envoy_types::pb::envoy::extensions::filters::common::matcher::action::v3::SkipFilter;
use envoy_types::pb::envoy::extensions::filters::http::credential_injector::v3::CredentialInjector;
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3::{
    HeaderMutation as HeaderMutationFilter, Mutations,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::http::injected_credentials::generic::v3::Generic;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    GenericSecret, SdsSecretConfig, Secret, secret,
};
use envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig as XdsExtension;
use envoy_types::pb::xds::r#type::matcher::v3::{
    Matcher, StringMatcher,
    matcher::{
        MatcherList, MatcherType, OnMatch,
        matcher_list::{FieldMatcher, Predicate, predicate},
        on_match,
    },
    string_matcher::MatchPattern,
};

use super::{ads_config_source, extproc, pack};
use crate::keys::{
    EXTPROC_UPSTREAM_FILTER, NATIVE_CREDENTIAL_FILTER, NATIVE_HEADERS_FILTER, OPENAI_PATH_PREFIX,
    ORIGINAL_PATH_HEADER,
};
use crate::translate::ir::{NativeUpstreamIr, SecretIr};

/// The filters before the codec.
pub fn filters(ir: &NativeUpstreamIr) -> Vec<HttpFilter> {
    let mut filters = vec![
        filter(EXTPROC_UPSTREAM_FILTER, pack(&translating_leg(ir))),
        filter(NATIVE_HEADERS_FILTER, pack(&headers(ir))),
    ];
    if let Some(secret) = &ir.credential {
        filters.push(filter(NATIVE_CREDENTIAL_FILTER, pack(&credential(secret))));
    }
    filters
}

/// The SDS resource of an injected credential.
pub fn secret(ir: &SecretIr) -> Secret {
    Secret {
        name: ir.name.clone(),
        r#type: Some(secret::Type::GenericSecret(GenericSecret {
            secret: Some(DataSource {
                specifier: Some(Specifier::InlineString(ir.value.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

fn filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// The upstream leg, skipped when the router leg saw an OpenAI path (the request goes to the
/// backend as the client sent it); an Anthropic request still gets translated.
fn translating_leg(ir: &NativeUpstreamIr) -> ExtensionWithMatcher {
    let input = XdsExtension {
        name: "original-path".into(),
        typed_config: Some(pack(&HttpRequestHeaderMatchInput {
            header_name: ORIGINAL_PATH_HEADER.into(),
        })),
    };
    let skip = OnMatch {
        on_match: Some(on_match::OnMatch::Action(XdsExtension {
            name: "skip".into(),
            typed_config: Some(pack(&SkipFilter {})),
        })),
        ..Default::default()
    };
    let openai_path = FieldMatcher {
        predicate: Some(Predicate {
            match_type: Some(predicate::MatchType::SinglePredicate(
                predicate::SinglePredicate {
                    input: Some(input),
                    matcher: Some(predicate::single_predicate::Matcher::ValueMatch(
                        StringMatcher {
                            match_pattern: Some(MatchPattern::Prefix(OPENAI_PATH_PREFIX.into())),
                            ..Default::default()
                        },
                    )),
                },
            )),
        }),
        on_match: Some(skip),
    };
    ExtensionWithMatcher {
        xds_matcher: Some(Matcher {
            matcher_type: Some(MatcherType::MatcherList(MatcherList {
                matchers: vec![openai_path],
            })),
            on_no_match: None,
        }),
        extension_config: Some(TypedExtensionConfig {
            name: EXTPROC_UPSTREAM_FILTER.into(),
            typed_config: Some(pack(&extproc::upstream_leg(&ir.extproc))),
        }),
        ..Default::default()
    }
}

fn headers(ir: &NativeUpstreamIr) -> HeaderMutationFilter {
    let removals = ir.remove.iter().map(|name| HeaderMutation {
        action: Some(header_mutation::Action::Remove(name.clone())),
    });
    let sets = ir.set.iter().map(|(key, value)| HeaderMutation {
        action: Some(header_mutation::Action::Append(HeaderValueOption {
            header: Some(HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        })),
    });
    HeaderMutationFilter {
        mutations: Some(Mutations {
            request_mutations: removals.chain(sets).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn credential(ir: &SecretIr) -> CredentialInjector {
    let generic = Generic {
        credential: Some(SdsSecretConfig {
            name: ir.name.clone(),
            sds_config: Some(ads_config_source()),
        }),
        header: ir.header.clone(),
        ..Default::default()
    };
    CredentialInjector {
        overwrite: true,
        credential: Some(TypedExtensionConfig {
            name: "envoy.http.injected_credentials.generic".into(),
            typed_config: Some(pack(&generic)),
        }),
        ..Default::default()
    }
}
