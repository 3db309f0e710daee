//! Which Secrets the config reads: the Kubernetes source watches these and no others.

use std::collections::BTreeSet;

use super::IndexSnapshot;
use crate::object::{Kind, ObjectKey};

impl IndexSnapshot {
    /// Every Secret a BackendSecurityPolicy names (in the policy's namespace unless the
    /// reference says otherwise), whether or not its block is the one in effect.
    pub fn referenced_secrets(&self) -> BTreeSet<ObjectKey> {
        self.backend_security_policies()
            .flat_map(|(key, policy)| {
                policy.spec.secret_refs().into_iter().map(|r| {
                    let namespace = r.namespace.as_deref().unwrap_or(&key.namespace);
                    ObjectKey::new(Kind::Secret, namespace, &r.name)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::index::Index;
    use crate::object::{Kind, ObjectKey, RawObject};

    fn policy(name: &str, spec: serde_json::Value) -> RawObject {
        RawObject {
            key: ObjectKey::new(Kind::BackendSecurityPolicy, "team", name),
            api_version: "aigateway.envoyproxy.io/v1beta1".into(),
            origin: None,
            value: json!({
                "apiVersion": "aigateway.envoyproxy.io/v1beta1",
                "kind": "BackendSecurityPolicy",
                "metadata": {"name": name, "namespace": "team"},
                "spec": spec,
            }),
        }
    }

    #[test]
    fn every_credential_block_names_its_secrets() {
        let mut index = Index::new();
        index.apply(policy(
            "key",
            json!({"type": "APIKey", "apiKey": {"secretRef": {"name": "openai"}}}),
        ));
        index.apply(policy(
            "aws",
            json!({"type": "AWSCredentials", "awsCredentials": {"region": "us-east-1",
                "credentialsFile": {"secretRef": {"name": "aws", "namespace": "shared"}}}}),
        ));
        index.apply(policy(
            "azure",
            json!({"type": "AzureCredentials", "azureCredentials": {"clientID": "c",
                "tenantID": "t", "clientSecretRef": {"name": "entra"}}}),
        ));
        let names: Vec<String> = index
            .snapshot()
            .referenced_secrets()
            .into_iter()
            .map(|k| format!("{}/{}", k.namespace, k.name))
            .collect();
        assert_eq!(names, ["shared/aws", "team/entra", "team/openai"]);
    }
}
