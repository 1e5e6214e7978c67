//! The node's network: its address, the pods' bridge (a CNI conflist for containerd: the
//! bridge, host-local and portmap plugins from Debian), and the kernel settings that the
//! node changes, saved before it starts and restored after it stops.

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;

/// The pods' bridge. Not `cni0`: a machine may have one of its own.
pub const BRIDGE: &str = "livestream0";
/// The CNI network's name (libcni names its cache files after it).
pub const CNI_NETWORK: &str = "livestream-pods";
/// The pods' addresses.
pub const POD_CIDR: &str = "10.244.0.0/24";

/// The sysctls that the bridge plugin (ip_forward), kube-proxy (conntrack, route_localnet)
/// and the kubelet (its kernel defaults: overcommit, panic, keys) may change.
const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

const SAVED_SYSCTLS: &str = "sysctls.saved";

/// The address the machine reaches others from (the source of its default route): the
/// node's InternalIP, where pods reach the API server and MinIO, and NodePorts listen.
pub fn node_ip() -> Result<Ipv4Addr, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind a UDP socket: {e}"))?;
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    socket
        .connect("203.0.113.1:9")
        .map_err(|e| format!("this machine has no default route, so no node address: {e}"))?;
    match socket.local_addr().map_err(|e| format!("local address: {e}"))?.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Ok(ip),
        other => Err(format!("the default route's source address {other} cannot be a node address")),
    }
}

/// Saves the current values (once per run directory: a restart of the node keeps the first).
pub fn save_sysctls(dir: &Path) {
    let path = dir.join(SAVED_SYSCTLS);
    if path.exists() {
        return;
    }
    let saved: String = SYSCTLS
        .iter()
        .filter_map(|name| {
            let value = fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?;
            Some(format!("{name}={}\n", value.trim()))
        })
        .collect();
    fs::write(&path, saved).expect("save the sysctls");
}

/// Writes back what [`save_sysctls`] saved in `dir`, if anything.
pub fn restore_sysctls(dir: &Path) {
    let Ok(saved) = fs::read_to_string(dir.join(SAVED_SYSCTLS)) else { return };
    for line in saved.lines() {
        let Some((name, value)) = line.split_once('=') else { continue };
        let path = Path::new("/proc/sys").join(name);
        if fs::read_to_string(&path).is_ok_and(|current| current.trim() != value)
            && let Err(e) = fs::write(&path, value)
        {
            eprintln!("cluster: cannot restore {name}={value}: {e}");
        }
    }
}

/// Pods reach the node and each other through the bridge; their traffic to the node's
/// address needs no masquerade, so the bridge plugin adds no iptables rules.
pub fn write_cni_config(conf_dir: &Path, ipam_dir: &Path) {
    fs::create_dir_all(conf_dir).expect("create the CNI configuration directory");
    let config = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let text = serde_json::to_string_pretty(&config).expect("CNI configuration");
    fs::write(conf_dir.join("10-livestream.conflist"), text).expect("write the CNI configuration");
}
