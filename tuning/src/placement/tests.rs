//! Tests of [`super::Placement`]: static checks, resolution on one- and two-node topologies, the
//! pool bound and the TOML forms.

use super::*;
use crate::schema::Pool;
use std::fmt;

fn list(cores: &[usize]) -> Placement {
    Placement { worker_cores: WorkerCores::List(cores.to_vec()), control_cores: Vec::new(), numa_node: None }
}

fn key_of(result: Result<impl fmt::Debug, ConfigError>) -> String {
    result.unwrap_err().key().unwrap_or("<no key>").to_owned()
}

#[test]
fn auto_skips_the_lowest_core_when_there_are_two_or_more() {
    let auto = Placement::default();
    assert_eq!(auto.resolve_worker_cores(&[3, 0, 2, 1]).unwrap(), [1, 2, 3]);
    assert_eq!(auto.resolve_worker_cores(&[0, 1]).unwrap(), [1]);
    assert_eq!(auto.resolve_worker_cores(&[5]).unwrap(), [5]);
}

#[test]
fn auto_leaves_out_control_cores() {
    let p = Placement { worker_cores: WorkerCores::Auto, control_cores: vec![2], numa_node: None };
    assert_eq!(p.resolve_worker_cores(&[0, 1, 2, 3]).unwrap(), [1, 3]);
    let p = Placement { worker_cores: WorkerCores::Auto, control_cores: vec![1], numa_node: None };
    assert_eq!(key_of(p.resolve_worker_cores(&[0, 1])), "placement.worker_cores");
}

#[test]
fn auto_with_no_cores_fails() {
    let err = Placement::default().resolve_worker_cores(&[]).unwrap_err();
    assert_eq!(err.key(), Some("placement.worker_cores"));
}

#[test]
fn explicit_list_is_kept_in_order() {
    assert_eq!(list(&[2, 1]).resolve_worker_cores(&[0, 1, 2]).unwrap(), [2, 1]);
}

#[test]
fn unavailable_worker_core_names_key_and_core() {
    let err = list(&[1, 7]).resolve_worker_cores(&[0, 1]).unwrap_err();
    assert_eq!(err.key(), Some("placement.worker_cores"));
    assert!(err.to_string().contains("= 7:"), "{err}");
}

#[test]
fn unavailable_control_core_names_key_and_core() {
    let p = Placement { worker_cores: WorkerCores::List(vec![1]), control_cores: vec![9], numa_node: None };
    let err = p.resolve_worker_cores(&[0, 1]).unwrap_err();
    assert_eq!(err.key(), Some("placement.control_cores"));
    assert!(err.to_string().contains("= 9:"), "{err}");
}

#[test]
fn empty_worker_list_is_invalid() {
    assert_eq!(key_of(list(&[]).validate()), "placement.worker_cores");
}

#[test]
fn duplicate_worker_core_is_invalid() {
    assert_eq!(key_of(list(&[1, 2, 1]).validate()), "placement.worker_cores[2]");
}

#[test]
fn duplicate_control_core_is_invalid() {
    let p = Placement { worker_cores: WorkerCores::Auto, control_cores: vec![0, 0], numa_node: None };
    assert_eq!(key_of(p.validate()), "placement.control_cores[1]");
}

#[test]
fn control_cores_must_be_disjoint_from_worker_cores() {
    let p = Placement { worker_cores: WorkerCores::List(vec![1, 2]), control_cores: vec![0, 2], numa_node: None };
    let err = p.validate().unwrap_err();
    assert_eq!(err.key(), Some("placement.control_cores"));
    assert!(err.to_string().contains("= 2:"), "{err}");
}

#[test]
fn worker_cores_toml_forms() {
    let auto: Placement = toml::from_str("worker_cores = \"auto\"").unwrap();
    assert_eq!(auto.worker_cores, WorkerCores::Auto);
    let listed: Placement = toml::from_str("worker_cores = [1, 3]").unwrap();
    assert_eq!(listed.worker_cores, WorkerCores::List(vec![1, 3]));
    let bad = toml::from_str::<Placement>("worker_cores = \"all\"").unwrap_err();
    assert!(bad.to_string().contains("worker_cores"), "{bad}");
    for p in [auto, listed] {
        let text = toml::to_string(&p).unwrap();
        assert_eq!(toml::from_str::<Placement>(&text).unwrap(), p);
    }
}

/// Two sockets of four cores: node 0 holds 0..=3, node 1 holds 4..=7.
fn two_nodes() -> Topology {
    Topology::from_nodes([(0, vec![0, 1, 2, 3]), (1, vec![4, 5, 6, 7])])
}

fn on_node(node: u32, worker_cores: WorkerCores, control_cores: &[usize]) -> Placement {
    Placement { worker_cores, control_cores: control_cores.to_vec(), numa_node: Some(node) }
}

fn resolve(p: &Placement, topology: &Topology) -> Result<Vec<usize>, ConfigError> {
    p.resolve(topology, &Config::default())
}

#[test]
fn auto_on_a_node_leaves_its_lowest_core_for_the_control_plane() {
    assert_eq!(resolve(&on_node(1, WorkerCores::Auto, &[]), &two_nodes()).unwrap(), [5, 6, 7]);
    assert_eq!(resolve(&on_node(0, WorkerCores::Auto, &[]), &two_nodes()).unwrap(), [1, 2, 3]);
}

#[test]
fn auto_on_a_node_with_control_cores_uses_the_rest_of_the_node() {
    let p = on_node(1, WorkerCores::Auto, &[7]);
    assert_eq!(resolve(&p, &two_nodes()).unwrap(), [4, 5, 6]);
    let p = on_node(1, WorkerCores::Auto, &[0]);
    assert_eq!(resolve(&p, &two_nodes()).unwrap(), [4, 5, 6, 7], "control on node 0 leaves node 1 whole");
}

#[test]
fn auto_without_a_node_spans_the_host_as_before() {
    assert_eq!(resolve(&Placement::default(), &two_nodes()).unwrap(), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn auto_on_an_empty_node_names_the_node() {
    let topology = Topology::from_nodes([(0, vec![0, 1]), (1, vec![])]);
    let err = resolve(&on_node(1, WorkerCores::Auto, &[]), &topology).unwrap_err();
    assert_eq!(err.key(), Some("placement.worker_cores"));
    assert!(err.to_string().contains("NUMA node 1 cores: []"), "{err}");
}

#[test]
fn unknown_numa_node_is_named_with_the_nodes() {
    let err = resolve(&on_node(2, WorkerCores::Auto, &[]), &two_nodes()).unwrap_err();
    assert_eq!(err.key(), Some("placement.numa_node"));
    let text = err.to_string();
    assert!(text.contains("= 2:") && text.contains("nodes: [0, 1]"), "{text}");
}

#[test]
fn listed_worker_on_another_node_names_the_core_and_its_node() {
    let p = on_node(0, WorkerCores::List(vec![1, 2, 5]), &[0]);
    let err = resolve(&p, &two_nodes()).unwrap_err();
    assert_eq!(err.key(), Some("placement.worker_cores"));
    let text = err.to_string();
    assert!(text.contains("= 5:") && text.contains("on NUMA node 1") && text.contains("numa_node = 0"), "{text}");
    let p = on_node(0, WorkerCores::List(vec![1, 2, 3]), &[0]);
    assert_eq!(resolve(&p, &two_nodes()).unwrap(), [1, 2, 3]);
    let p = Placement { numa_node: None, ..on_node(0, WorkerCores::List(vec![1, 5]), &[]) };
    assert_eq!(resolve(&p, &two_nodes()).unwrap(), [1, 5], "without numa_node, nodes may be mixed");
}

#[test]
fn offline_worker_core_is_named_by_resolve() {
    let err = resolve(&list(&[1, 3]), &Topology::from_nodes([(0, vec![0, 1, 2])])).unwrap_err();
    assert_eq!(err.key(), Some("placement.worker_cores"));
    assert!(err.to_string().contains("= 3:"), "{err}");
}

#[test]
fn resolve_worker_cores_refuses_numa_node_it_cannot_check() {
    let err = on_node(0, WorkerCores::Auto, &[]).resolve_worker_cores(&[0, 1]).unwrap_err();
    assert_eq!(err.key(), Some("placement.numa_node"));
}

#[test]
fn pools_beyond_the_total_bound_name_workers_and_bytes() {
    // 8 MiB per worker: three workers fit 24 MiB exactly, four do not.
    let config = Config {
        pool: Pool { buffers_per_worker: Some(4096), buffer_bytes: 2048, ..Pool::default() },
        limits: Limits { max_pool_bytes_total: 24 << 20, ..Limits::default() },
        ..Config::default()
    };
    assert_eq!(Placement::default().resolve(&Topology::single_node(&[0, 1, 2, 3]), &config).unwrap(), [1, 2, 3]);
    let err = Placement::default().resolve(&Topology::single_node(&[0, 1, 2, 3, 4]), &config).unwrap_err();
    assert_eq!(err.key(), Some("placement.worker_cores"));
    let text = err.to_string();
    assert!(text.contains("4 workers"), "{text}");
    assert!(text.contains("33554432 bytes") && text.contains("max_pool_bytes_total = 25165824"), "{text}");
}

#[test]
fn config_resolve_placement_uses_its_pool_and_limits() {
    let mut config = Config::default();
    config.placement.numa_node = Some(1);
    assert_eq!(config.resolve_placement(&two_nodes()).unwrap(), [5, 6, 7]);
    config.limits.max_pool_bytes_total = 1 << 20;
    assert_eq!(key_of(config.resolve_placement(&two_nodes())), "placement.worker_cores");
}

#[test]
fn numa_node_toml_form() {
    let p: Placement = toml::from_str("numa_node = 1").unwrap();
    assert_eq!(p.numa_node, Some(1));
    assert_eq!(toml::from_str::<Placement>(&toml::to_string(&p).unwrap()).unwrap(), p);
    assert!(!toml::to_string(&Placement::default()).unwrap().contains("numa_node"));
    assert!(toml::from_str::<Placement>("numa_node = -1").is_err());
}
