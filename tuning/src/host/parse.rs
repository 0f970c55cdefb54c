//! Parsers for the kernel's text formats that the host checks read: CPU lists (`0-3,8`), CPU bitmasks
//! (`00000000,0000000f`) and `/proc/interrupts`.
//!
//! Pure functions over text; they never read files and never panic on malformed input (they return `None`
//! or skip the row).

/// Largest CPU number accepted from a CPU list, so a corrupt range cannot make a huge vector.
const MAX_CPU: usize = 1 << 16;

/// Parses a kernel CPU list such as `0-3,8,10-11` (empty text is the empty list).
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?),
            None => {
                let cpu = part.parse::<usize>().ok()?;
                (cpu, cpu)
            }
        };
        if first > last || last > MAX_CPU {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Parses a kernel CPU bitmask such as `rps_cpus` (`00000000,00000003`: comma-separated 32-bit hex words,
/// most significant first) into the CPUs it names.
pub fn parse_cpu_mask(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    let words: Vec<&str> = text.trim().split(',').collect();
    for (index_from_low, word) in words.iter().rev().enumerate() {
        let bits = u32::from_str_radix(word.trim(), 16).ok()?;
        for bit in 0..32 {
            if bits & (1 << bit) != 0 {
                cpus.push(index_from_low * 32 + bit);
            }
        }
    }
    cpus.sort_unstable();
    Some(cpus)
}

/// Formats CPUs as a kernel CPU bitmask in the `rps_cpus` format (32-bit hex words, most significant first).
pub fn format_cpu_mask(cpus: &[usize]) -> String {
    let words_len = cpus.iter().max().map_or(1, |max| max / 32 + 1);
    let mut words = vec![0u32; words_len];
    for &cpu in cpus {
        words[cpu / 32] |= 1 << (cpu % 32);
    }
    let mut text = String::new();
    for (i, word) in words.iter().rev().enumerate() {
        if i == 0 {
            text.push_str(&format!("{word:x}"));
        } else {
            text.push_str(&format!(",{word:08x}"));
        }
    }
    text
}

/// Formats CPUs as a kernel CPU list (`1-3,8`); input must be sorted.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

/// One numbered row of `/proc/interrupts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InterruptRow {
    /// The IRQ number (the directory under `/proc/irq/`).
    pub irq: u32,
    /// The rest of the row after the counts: controller, trigger and device names.
    pub description: String,
    /// (CPU, interrupts served since boot) for each CPU column of the header.
    pub per_cpu: Vec<(usize, u64)>,
}

/// Parses `/proc/interrupts`: the header names the CPU columns; numbered rows give a count per column.
/// Rows without a numeric IRQ (NMI, LOC, ...) are skipped. `None` when there is no `CPUn` header.
pub fn parse_interrupts(text: &str) -> Option<Vec<InterruptRow>> {
    let mut lines = text.lines();
    let header = lines.next()?;
    let cpus: Vec<usize> = header
        .split_whitespace()
        .map(|col| col.strip_prefix("CPU").and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()?;
    if cpus.is_empty() {
        return None;
    }
    let mut rows = Vec::new();
    for line in lines {
        let mut tokens = line.split_whitespace();
        let Some(irq) = tokens.next().and_then(|t| t.strip_suffix(':')).and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let mut per_cpu = Vec::with_capacity(cpus.len());
        let mut rest: Vec<&str> = Vec::new();
        for token in tokens {
            match token.parse::<u64>() {
                Ok(count) if per_cpu.len() < cpus.len() && rest.is_empty() => {
                    per_cpu.push((cpus[per_cpu.len()], count))
                }
                _ => rest.push(token),
            }
        }
        rows.push(InterruptRow { irq, description: rest.join(" "), per_cpu });
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("\n"), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list("0-999999999"), None);
    }

    #[test]
    fn cpu_masks_round_trip() {
        assert_eq!(parse_cpu_mask("00000000,00000003\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_mask("1,00000004"), Some(vec![2, 32]));
        assert_eq!(parse_cpu_mask("0"), Some(vec![]));
        assert_eq!(parse_cpu_mask("zz"), None);
        assert_eq!(format_cpu_mask(&[2, 32]), "1,00000004");
        assert_eq!(format_cpu_mask(&[0, 1]), "3");
        assert_eq!(format_cpu_mask(&[]), "0");
    }

    #[test]
    fn cpu_lists_format_as_ranges() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn interrupts_map_columns_to_cpus_and_skip_named_rows() {
        let text = "           CPU0       CPU2\n \
                    36:          0     220638  PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n \
                    NMI:          0          0   Non-maskable interrupts\n \
                    ERR:          0\n \
                    41:       4139          7  PCI-MSIX-0000:00:04.0   1-edge      eth0-rx-0\n";
        let rows = parse_interrupts(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].irq, 36);
        assert_eq!(rows[0].per_cpu, vec![(0, 0), (2, 220638)]);
        assert_eq!(rows[1].description, "PCI-MSIX-0000:00:04.0 1-edge eth0-rx-0");
        assert_eq!(parse_interrupts("garbage\n1: 2 3\n"), None);
        assert_eq!(parse_interrupts(""), None);
    }
}
