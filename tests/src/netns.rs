//! Hosts of a test in network namespaces of its own: each namespace has one address on a bridge in the test's own
//! namespace (which has the bridge's first address), so a daemon started in it is a host of its own, reachable from
//! the test, and a route can be cut between two of them.
//!
//! Owns [`Lab`]: it creates the bridge, the namespaces and their veth pairs (names and subnet unique to the test
//! process), starts programs inside a namespace through a wrapper script (`ip netns exec`), blackholes routes, and
//! deletes everything it created when dropped. Needs root (CAP_NET_ADMIN) and `ip` (iproute2); never touches an
//! interface or namespace it did not create.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test's namespaces and their bridge.
pub struct Lab {
    bridge: String,
    namespaces: Vec<String>,
    subnet: [u8; 3],
    dir: tempfile::TempDir,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Lab {
    /// `hosts` namespaces on a new bridge, or why they could not be made (not root, no `ip`). A test that gets an
    /// error while running as root fails; as another user it may say it is skipped.
    pub fn create(hosts: usize) -> Result<Lab, String> {
        // Unique to this lab: from the pid and the labs this process made before (tests of one process run at once).
        static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = std::process::id() * 8 + LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8;
        // 10.213.X.0/24, X from the id: tests of several processes at once do not collide.
        let subnet = [10, 213, (id % 250) as u8 + 1];
        let bridge = format!("rfbr{}", id % 100_000);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut lab = Lab { bridge: bridge.clone(), namespaces: Vec::new(), subnet, dir };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", lab.bridge_ip()), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for host in 0..hosts {
            let ns = format!("rf{}h{host}", id % 100_000);
            ip(&["netns", "add", &ns])?;
            lab.namespaces.push(ns.clone());
            let (outside, inside) = (format!("rf{}v{host}", id % 100_000), format!("rf{}p{host}", id % 100_000));
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", &bridge, "up"])?;
            let address = format!("{}/24", lab.host_ip(host));
            ip(&["netns", "exec", &ns, "ip", "addr", "add", &address, "dev", &inside])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &inside, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// The bridge's address: the test's own, reachable from every host.
    pub fn bridge_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], 1))
    }

    /// Host `host`'s address.
    pub fn host_ip(&self, host: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], 2 + host as u8))
    }

    /// An executable that runs `program` with its arguments inside host `host`'s namespace (`ip netns exec`, which
    /// execs: the process is the program's).
    pub fn wrapper(&self, host: usize, program: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(format!("in-host-{host}"));
        let script = format!("#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n", self.namespaces[host], program.display());
        std::fs::write(&path, script).expect("write the wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod the wrapper");
        path
    }

    /// Cuts hosts `a` and `b` apart: each drops what it would send to the other (a blackhole route: the sender is
    /// told at once, as by an ICMP unreachable).
    pub fn cut(&self, a: usize, b: usize) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            let target = format!("{}/32", self.host_ip(to));
            ip(&["netns", "exec", &self.namespaces[from], "ip", "route", "add", "blackhole", &target])?;
        }
        Ok(())
    }
}

impl Lab {
    /// Undoes [`Lab::cut`]: hosts `a` and `b` reach each other again.
    pub fn restore(&self, a: usize, b: usize) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            let target = format!("{}/32", self.host_ip(to));
            ip(&["netns", "exec", &self.namespaces[from], "ip", "route", "del", "blackhole", &target])?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth pair, and with it the other end.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
