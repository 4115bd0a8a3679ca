//! What "runs" in the double's pod, whichever protocol carried the exec:
//! `echo ARGS...` prints its arguments, `cat` copies stdin to stdout until stdin
//! closes, `false` exits 1, `sh -c 'exit N'` exits N; anything else is "not found"
//! (exit 127). The result is the `Status` the error channel carries.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The command's standard streams.
pub struct Stdio {
    /// Absent unless the client asked for stdin.
    pub stdin: Option<mpsc::UnboundedReceiver<Bytes>>,
    pub stdout: mpsc::UnboundedSender<Bytes>,
    pub stderr: mpsc::UnboundedSender<Bytes>,
}

/// Runs `command`; returns the Status for the error stream once it has exited
/// (its stdout and stderr senders are dropped by then).
pub async fn run(command: &[String], stdio: Stdio) -> Value {
    let Stdio {
        stdin,
        stdout,
        stderr,
    } = stdio;
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let code = match args[..] {
        ["echo", ref rest @ ..] => {
            let _ = stdout.send(Bytes::from(format!("{}\n", rest.join(" "))));
            0
        }
        ["cat"] => {
            if let Some(mut stdin) = stdin {
                while let Some(chunk) = stdin.recv().await {
                    let _ = stdout.send(chunk);
                }
            }
            0
        }
        ["true"] => 0,
        ["false"] => 1,
        ["sh", "-c", script] if script.starts_with("exit ") => {
            script[5..].trim().parse().unwrap_or(2)
        }
        _ => {
            let name = args.first().copied().unwrap_or("");
            let _ = stderr.send(Bytes::from(format!(
                "exec: \"{name}\": executable file not found in $PATH\n"
            )));
            127
        }
    };
    status(command, code)
}

pub fn status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}
