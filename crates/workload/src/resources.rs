//! Per-replica resource data (pod name, resource attributes), built once per process.
//!
//! A replica's resource is the same on every span it emits, so it is rendered once and
//! shared by every span (a reference count) instead of being rebuilt 7 times per trace.

use std::sync::{Arc, OnceLock};

use span_row::SpanResource;

use crate::catalog::{INSTANCES_PER_SERVICE, SDKS, SERVICES, SERVICE_VERSIONS};
use crate::json::ObjectWriter;
use crate::prng::mix64;

/// The Kubernetes namespace every service is deployed in.
pub(crate) const NAMESPACE: &str = "shop";

/// Characters Kubernetes uses in generated name suffixes (no vowels, no look-alikes).
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The service, its version, the pod name (the `service_instance` column and
/// `k8s.pod.name`) and the resource attributes. Neither `service.instance.id` nor
/// `telemetry.sdk.name` is repeated in the attributes, which keeps them within the
/// 200-400 bytes per span of the design.
pub(crate) type Replica = Arc<SpanResource>;

/// Replica `instance` of service number `service`.
pub(crate) fn replica(service: usize, instance: usize) -> &'static Replica {
    static REPLICAS: OnceLock<Vec<Replica>> = OnceLock::new();
    let all = REPLICAS.get_or_init(build_all);
    let i = service.min(SERVICES.len() - 1) * INSTANCES_PER_SERVICE
        + instance.min(INSTANCES_PER_SERVICE - 1);
    &all[i]
}

fn build_all() -> Vec<Replica> {
    let mut all = Vec::with_capacity(SERVICES.len() * INSTANCES_PER_SERVICE);
    for (service, name) in SERVICES.iter().enumerate() {
        // One ReplicaSet per service, so its pods share the middle part of their names.
        let replica_set = mix64(0x5e_7000 + service as u64);
        for instance in 0..INSTANCES_PER_SERVICE {
            let pod = mix64(replica_set ^ (instance as u64 + 1));
            let mut pod_name = String::with_capacity(name.len() + 17);
            pod_name.push_str(name);
            pod_name.push('-');
            push_k8s_suffix(&mut pod_name, replica_set, 9);
            pod_name.push('-');
            push_k8s_suffix(&mut pod_name, pod, 5);

            let mut host = String::from("node-");
            crate::json::push_u64(&mut host, pod % 12);

            let sdk = &SDKS[service % SDKS.len()];
            let mut attrs = String::with_capacity(256);
            let mut w = ObjectWriter::new(&mut attrs);
            w.str("host.name", &host)
                .str("k8s.pod.name", &pod_name)
                .str("service.name", name)
                .str("service.version", SERVICE_VERSIONS[service])
                .str("service.namespace", NAMESPACE)
                .str("telemetry.sdk.version", sdk.version)
                .str("telemetry.sdk.language", sdk.language)
                .finish();
            all.push(Arc::new(SpanResource {
                service_name: Some((*name).to_owned()),
                service_version: Some(SERVICE_VERSIONS[service].to_owned()),
                service_instance: Some(pod_name),
                attributes: attrs,
            }));
        }
    }
    all
}

fn push_k8s_suffix(out: &mut String, mut bits: u64, len: usize) {
    for _ in 0..len {
        let n = K8S_ALPHABET.len() as u64;
        out.push(char::from(K8S_ALPHABET[(bits % n) as usize]));
        bits /= n;
    }
}
