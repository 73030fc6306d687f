//! Snapshot boot, in real VMs of the default kernel: the first VM boots cold and saves the
//! image's snapshot, later ones are restored from it and are not clones of each other (their
//! random numbers differ, their wall clock is the host's), a corrupt snapshot falls back to a
//! cold boot, and a restored VM runs steps and loads the module like a booted one. Times are
//! printed, not asserted.

mod support;

use std::time::Duration;

use kspec::exec;
use kspec::vm::{self, StepRequest, Vm, VmConfig};
use support::default_image;

/// The default image's VM config with snapshots kept in `dir` (each test its own).
fn config(dir: &std::path::Path) -> VmConfig {
    let (img, settings) = default_image();
    let mut cfg = exec::vm_config(img, settings, exec::DEFAULT_CPUS);
    cfg.snapshots = Some(dir.to_owned());
    cfg
}

fn run(vm: &mut Vm, script: &str) -> String {
    let out = vm
        .run(&StepRequest::new(script, Duration::from_secs(30)))
        .expect("step runs");
    assert_eq!(
        out.exit(),
        0,
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// 32 bytes from the kernel's CRNG on CPU 0, where both clones would start from the same state.
const RANDOM: &str = "taskset 1 head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'";

#[test]
fn restored_vms_are_not_clones_of_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let first = Vm::boot(&cfg, None).expect("cold boot");
    assert!(!first.restored);
    let saved = first
        .snapshot_saved
        .expect("the cold boot saves the snapshot");
    println!(
        "cold boot {:.2}s, snapshot saved in {:.2}s",
        first.boot_time.as_secs_f64(),
        saved.as_secs_f64()
    );
    first.shutdown();
    // A restored guest's clock goes on from the moment of the snapshot: only the host's time,
    // sent at restore, can make it right after this pause.
    std::thread::sleep(Duration::from_secs(3));

    let mut seen = Vec::new();
    for i in 0..2 {
        let mut vm = Vm::boot(&cfg, None).expect("restore");
        assert!(vm.restored, "VM {i} was not restored: {:?}", vm.boot_note);
        println!("restored in {:.3}s", vm.boot_time.as_secs_f64());
        let random = run(&mut vm, RANDOM);
        assert_eq!(random.len(), 64, "{random}");
        let guest_now: u64 = run(&mut vm, "date +%s").parse().unwrap();
        let host_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            guest_now.abs_diff(host_now) <= 1,
            "guest clock {guest_now}, host {host_now}"
        );
        // A restored guest is a working guest: the module loads and its channel answers.
        run(
            &mut vm,
            &format!("insmod {}", default_image().0.modules[0].guest_path),
        );
        run(&mut vm, "kchanctl proc read >/dev/null");
        seen.push(random);
        vm.shutdown();
    }
    assert_ne!(
        seen[0], seen[1],
        "two restored VMs read the same random bytes"
    );
}

#[test]
fn a_corrupt_snapshot_falls_back_to_a_cold_boot_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let path = vm::snapshot::path_for(dir.path(), &cfg, None);
    std::fs::write(&path, b"QEVM this is not a migration stream").unwrap();
    let mut vm = Vm::boot(&cfg, None).expect("a cold boot after the failed restore");
    assert!(!vm.restored);
    let note = vm.boot_note.clone().unwrap_or_default();
    assert!(note.contains("snapshot not restored"), "{note:?}");
    println!("note: {note}");
    assert_eq!(run(&mut vm, "echo alive"), "alive");
    assert!(
        vm.snapshot_saved.is_some(),
        "a new snapshot replaces the corrupt one"
    );
    vm.shutdown();
    let vm = Vm::boot(&cfg, None).expect("restore");
    assert!(vm.restored, "{:?}", vm.boot_note);
}

#[test]
fn a_changed_machine_or_image_gets_another_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let base = vm::snapshot::path_for(dir.path(), &cfg, None);
    let mut more_memory = cfg.clone();
    more_memory.memory_mb += 64;
    let mut more_cpus = cfg.clone();
    more_cpus.cpus += 1;
    let mut cmdline = cfg.clone();
    cmdline.cmdline.push_str(" quiet");
    for other in [more_memory, more_cpus, cmdline] {
        assert_ne!(vm::snapshot::path_for(dir.path(), &other, None), base);
    }
    let with_files = vm::snapshot::path_for(dir.path(), &cfg, Some(b"spec files"));
    assert_ne!(with_files, base);
    assert_eq!(vm::snapshot::path_for(dir.path(), &cfg, None), base);
}

#[test]
fn vms_of_one_image_booting_at_once_leave_one_whole_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let boots: Vec<Vm> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| Vm::boot(&cfg, None).expect("cold boot")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Whichever finds no snapshot once it is ready saves one (both, when they get there
    // together); neither may report a failure.
    let saved = boots
        .iter()
        .filter(|vm| vm.snapshot_saved.is_some())
        .count();
    assert!(saved >= 1);
    for vm in boots {
        assert!(!vm.restored);
        assert_eq!(vm.boot_note, None);
        vm.shutdown();
    }
    println!("{saved} of 2 saved");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "one snapshot, no partial files: {leftovers:?}"
    );
    let mut vm = Vm::boot(&cfg, None).expect("restore");
    assert!(vm.restored, "{:?}", vm.boot_note);
    assert_eq!(run(&mut vm, "echo alive"), "alive");
}

/// The kernel finishes booting in the background (the TSC's refined calibration switches the
/// clocksource about a second in): a snapshot taken before that would replay it into a step of
/// every restored VM. Found by the workflow simulation: `kchanctl proc write` failed its exact
/// kernel-log lines with "clocksource: Switched to clocksource tsc".
#[test]
fn a_restored_vm_logs_nothing_of_its_boot_into_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    Vm::boot(&cfg, None).expect("cold boot").shutdown();
    let mut vm = Vm::boot(&cfg, None).expect("restore");
    assert!(vm.restored, "{:?}", vm.boot_note);
    let out = vm
        .run(&StepRequest::new("sleep 2", Duration::from_secs(30)))
        .expect("step runs");
    let logged: Vec<String> = out
        .start
        .before
        .records
        .iter()
        .chain(&out.end.during.records)
        .map(|r| r.text.clone())
        .collect();
    assert!(logged.is_empty(), "a restored VM logged {logged:?}");
}
