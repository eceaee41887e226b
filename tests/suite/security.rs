//! The hostile-script catalogue, run against both backends. Each case states the
//! safe outcome, and every case also checks that the host is clean afterwards:
//! no process of the run left, no run directory left.
//!
//! The catalogue runs as the suite's user and, where the suite is root, as a
//! normal user too. Each leftover check looks for its own script's
//! processes by name, so catalogues may run side by side.

use crate::common;

use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::users::{exec_json_as, shared_config, User};
use common::{docker_ready, exec_config, exec_json, ExecRun, Workdir};
use serde_json::Value;

/// Says why a run's outcome is unsafe, or nothing when it is safe.
type Check = Box<dyn Fn(&ExecRun) -> Result<(), String>>;

struct Case {
    name: &'static str,
    script: String,
    args: Vec<String>,
    check: Check,
}

fn case(
    name: &'static str,
    script: impl Into<String>,
    check: impl Fn(&ExecRun) -> Result<(), String> + 'static,
) -> Case {
    Case {
        name,
        script: script.into(),
        args: Vec::new(),
        check: Box::new(check),
    }
}

fn stdout(run: &ExecRun) -> &str {
    run.report["stdout"].as_str().unwrap_or("")
}

fn expect_stdout(expected: &'static str) -> impl Fn(&ExecRun) -> Result<(), String> {
    move |run| {
        if stdout(run) == expected {
            Ok(())
        } else {
            Err(format!(
                "stdout {:?}, wanted {expected:?}; stderr: {}",
                stdout(run),
                run.report["stderr"]
            ))
        }
    }
}

fn ended_not_by_timeout(run: &ExecRun) -> Result<(), String> {
    if run.report["timed_out"] == true {
        Err("ran into the timeout instead of being stopped".into())
    } else {
        Ok(())
    }
}

/// Proves there is no way out without sending anything anywhere: the
/// interfaces and routes of the script's network namespace, and whether it
/// may make an inet socket at all.
const NO_WAY_OUT: &str = "\
import socket
interfaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]
routes = open('/proc/net/route').read().splitlines()[1:]
routes6 = [l for l in open('/proc/net/ipv6_route').read().splitlines() if l.split()[-1] != 'lo']
print('interfaces', interfaces)
print('routes', len(routes), len(routes6))
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    print('inet sockets allowed')
except OSError:
    print('inet sockets refused')
";

fn catalogue(host_port: u16, udp_port: u16) -> Vec<Case> {
    let mut cases = vec![
        case(
            "fork bomb",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            |run| {
                if run.report["success"] == true {
                    Err("a fork bomb cannot succeed".into())
                } else {
                    Ok(())
                }
            },
        ),
        case(
            "memory bomb",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n",
            |run| {
                if run.report["success"] == true {
                    return Err("a memory bomb cannot succeed".into());
                }
                ended_not_by_timeout(run)
            },
        ),
        case("cpu spin past the timeout", "while True:\n    pass\n", |run| {
            if run.report["timed_out"] == true && run.code == 124 {
                Ok(())
            } else {
                Err(format!("not timed out: {}", run.report))
            }
        }),
        case(
            "sleep with SIGTERM ignored",
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n",
            |run| {
                if run.report["timed_out"] == true {
                    Ok(())
                } else {
                    Err(format!("not timed out: {}", run.report))
                }
            },
        ),
        case(
            "double-forked daemon",
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(3)\n        open('/workspace/daemon-was-here', 'w').write('x')\n        os._exit(0)\n    os._exit(0)\nprint('parent done')\n",
            expect_stdout("parent done\n"),
        ),
        case(
            "non-daemon thread outliving main",
            "import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()\nprint('main done')\n",
            |run| {
                if stdout(run) == "main done\n" && run.report["timed_out"] == true {
                    Ok(())
                } else {
                    Err(format!("{}", run.report))
                }
            },
        ),
        case(
            "filling /tmp",
            "try:\n    with open('/tmp/fill', 'wb') as f:\n        while True:\n            f.write(b'x' * (1 << 20))\nexcept OSError as e:\n    print('stopped', e.errno)\n",
            |run| {
                let out = stdout(run);
                if out.starts_with("stopped") {
                    Ok(())
                } else {
                    Err(format!("{}", run.report))
                }
            },
        ),
        case(
            "multi-GB output flood",
            "import sys\nchunk = 'x' * 65536\nwhile True:\n    sys.stdout.write(chunk)\n",
            |run| {
                if run.report["truncated"] != true {
                    return Err("not marked truncated".into());
                }
                if stdout(run).len() > 2 << 20 {
                    return Err(format!("kept {} bytes", stdout(run).len()));
                }
                ended_not_by_timeout(run)
            },
        ),
        case(
            "100 MB line without newline",
            "import sys\nsys.stdout.write('y' * 100_000_000)\n",
            |run| {
                if run.report["truncated"] == true && stdout(run).len() <= 1 << 20 {
                    Ok(())
                } else {
                    Err(format!("truncated={} kept={}", run.report["truncated"], stdout(run).len()))
                }
            },
        ),
        case(
            "reading /etc/shadow",
            "try:\n    print(open('/etc/shadow').read()[:20])\nexcept OSError as e:\n    print('denied')\n",
            expect_stdout("denied\n"),
        ),
        case(
            "reading root's ssh keys",
            "import os\ntry:\n    print(os.listdir('/root/.ssh'))\nexcept OSError:\n    print('denied')\n",
            expect_stdout("denied\n"),
        ),
        case(
            "reading the host environment",
            "import os\nprint('CODEMODE_TEST_HOST_SECRET' in os.environ, any('s3cr3t-host-value' in v for v in os.environ.values()))\n",
            expect_stdout("False False\n"),
        ),
        case(
            "reading /proc/1/environ",
            "try:\n    data = open('/proc/1/environ', 'rb').read()\n    print(b's3cr3t-host-value' in data)\nexcept OSError:\n    print(False)\n",
            expect_stdout("False\n"),
        ),
        case(
            "writing outside the workspace",
            "import os\nwritten = []\nfor path in ['/etc/evil', '/usr/evil', '/evil', '/run/codemode/evil', '/home/evil']:\n    try:\n        open(path, 'w').write('x')\n        written.append(path)\n    except OSError:\n        pass\nopen('/workspace/ok', 'w').write('x')\nopen('/tmp/ok', 'w').write('x')\nprint(written)\n",
            expect_stdout("[]\n"),
        ),
        case(
            "a way off this machine",
            NO_WAY_OUT,
            // Both seccomp filters refuse inet sockets, too.
            expect_stdout("interfaces ['lo']\nroutes 0 0\ninet sockets refused\n"),
        ),
        case(
            "watching the host's commands run with inotify",
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.inotify_init1(0)\nprint('refused' if fd < 0 else libc.inotify_add_watch(fd, b'/usr/bin', 0x20))\n",
            expect_stdout("refused\n"),
        ),
        case(
            "connecting to /var/run/docker.sock",
            "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('/var/run/docker.sock')\n    print('connected')\nexcept OSError:\n    print('blocked')\n",
            expect_stdout("blocked\n"),
        ),
        case(
            "ptrace",
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.ptrace(0, 0, None, None))\n",
            expect_stdout("-1\n"),
        ),
        case(
            "becoming root",
            "import os\ntry:\n    os.setuid(0)\n    print('root')\nexcept OSError:\n    print('denied', os.getuid() != 0)\n",
            expect_stdout("denied True\n"),
        ),
        case(
            "killing the parent and everything",
            "import os, signal\nfor target in [os.getppid(), -1]:\n    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass\nprint('still here')\n",
            |_| Ok(()),
        ),
        case(
            "listing host processes",
            "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\nprint(len(pids) < 10, str(os.getppid()) != '1' or True)\n",
            expect_stdout("True True\n"),
        ),
        case(
            "descriptors beyond stdio",
            "import os\nfds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\nprint([fd for fd in fds if fd > 3])\n",
            expect_stdout("[]\n"),
        ),
        case(
            "a forged token",
            "import os, mcp_tools\nos.environ['CODEMODE_BRIDGE_TOKEN'] = 'cm_' + '0' * 64\ntry:\n    mcp_tools.news.search(query='ai')\n    print('called')\nexcept mcp_tools.ToolError as e:\n    print(e.kind)\n",
            expect_stdout("unauthorized\n"),
        ),
    ];
    cases.push(case(
        "connecting to a host loopback service",
        format!("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {host_port}), timeout=2)\n    print('connected')\nexcept OSError:\n    print('blocked')\n"),
        expect_stdout("blocked\n"),
    ));
    cases.push(case(
        "udp egress",
        format!("import socket\ntry:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.sendto(b'leak', ('127.0.0.1', {udp_port}))\n    print('sent')\nexcept OSError:\n    print('blocked')\n"),
        expect_stdout("blocked\n"),
    ));
    let mut outside = case(
        "a tool outside the grant",
        "import mcp_tools\ntry:\n    mcp_tools.call('news', 'get_article', id='tech-001')\n    print('called')\nexcept mcp_tools.ToolError as e:\n    print(e.kind)\n",
        expect_stdout("forbidden\n"),
    );
    outside.args = vec!["--allow".into(), "news.search".into()];
    cases.push(outside);
    cases
}

/// Processes whose command line names this run's script.
fn leftovers(script_marker: &str) -> String {
    let out = Command::new("pgrep")
        .args(["-af", script_marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs every case with codemode started by the suite, or by `user`: a
/// normal user, whose runs get the default limits (a memory limit a normal
/// user sets is refused where no cgroup is theirs; `suite/users.rs` covers
/// that).
fn run_catalogue(backend: &str, user: Option<&User>) {
    let work = match user {
        None => Workdir::with_config(&exec_config()),
        Some(_) => Workdir::shared(&shared_config("")),
    };
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let cases = catalogue(
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );

    let mut failures = Vec::new();
    for case in cases {
        let mut args: Vec<&str> = vec!["--timeout", "4s"];
        if user.is_none() {
            args.extend(["--memory", "256m"]);
        }
        args.extend(case.args.iter().map(String::as_str));
        let run = {
            // The secret is in codemode's own environment: it must not reach the script.
            std::env::set_var("CODEMODE_TEST_HOST_SECRET", "s3cr3t-host-value");
            match user {
                None => exec_json(&work, backend, &case.script, &args),
                Some(user) => exec_json_as(user, &work, backend, &case.script, &args),
            }
        };
        if let Err(why) = (case.check)(&run) {
            failures.push(format!("{}: {why}", case.name));
        }
        std::thread::sleep(Duration::from_millis(300));
        // A daemon that escaped would still be sleeping now, under this name.
        let left = leftovers(&format!("/workspace/{}", run.script));
        if !left.is_empty() {
            failures.push(format!("{}: processes left behind:\n{left}", case.name));
        }
        let tmp_left: Vec<_> = std::fs::read_dir(run.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if !tmp_left.is_empty() {
            failures.push(format!(
                "{}: run files left behind: {tmp_left:?}",
                case.name
            ));
        }
    }
    // Nothing reached the host's loopback services.
    if tcp.accept().is_ok() {
        failures.push("a connection reached the host's TCP listener".into());
    }
    let mut buf = [0u8; 16];
    if udp.recv_from(&mut buf).is_ok() {
        failures.push("a datagram reached the host's UDP socket".into());
    }
    assert!(
        failures.is_empty(),
        "{backend} sandbox failed {} case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn native_sandbox_contains_every_hostile_script() {
    run_catalogue("native", None);
}

#[test]
fn docker_sandbox_contains_every_hostile_script() {
    if !docker_ready() {
        return;
    }
    run_catalogue("docker", None);
}

#[test]
fn native_sandbox_contains_every_hostile_script_of_a_normal_user() {
    if let Some((alice, _)) = User::others() {
        run_catalogue("native", Some(&alice));
    }
}

#[test]
fn docker_sandbox_contains_every_hostile_script_of_a_normal_user() {
    if let Some((alice, _)) = User::others() {
        if docker_ready() {
            run_catalogue("docker", Some(&alice.with_docker()));
        }
    }
}

#[test]
fn a_token_from_one_run_is_worthless_in_the_next() {
    let work = Workdir::with_config(&exec_config());
    let first = exec_json(
        &work,
        "native",
        "import os\nprint(os.environ['CODEMODE_BRIDGE_TOKEN'])\n",
        &[],
    );
    let token = first.report["stdout"].as_str().unwrap().trim().to_string();
    assert!(token.starts_with("cm_"), "{}", first.report);
    let script = format!(
        "import os, mcp_tools\nos.environ['CODEMODE_BRIDGE_TOKEN'] = {token:?}\ntry:\n    mcp_tools.news.search(query='ai')\n    print('called')\nexcept mcp_tools.ToolError as e:\n    print(e.kind)\n"
    );
    let second = exec_json(&work, "native", &script, &[]);
    assert_eq!(
        second.report["stdout"],
        Value::from("unauthorized\n"),
        "{}",
        second.report
    );
}
