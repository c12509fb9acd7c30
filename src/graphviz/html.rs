//! SVG from Graphviz's `dot` program, and the HTML page that shows it at every depth.

use super::labels::html_escape;
use super::{Options, max_depth, to_dot};
use crate::error::{Error, Result};
use crate::ir::Graph;
use std::fmt::Write;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs Graphviz's `dot -Tsvg` on `dot` text.
pub fn render_svg(dot: &str) -> Result<String> {
    let spawned =
        Command::new("dot").arg("-Tsvg").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Graphviz(
                "SVG and HTML output need Graphviz's `dot` program, which is not on PATH; install Graphviz \
                 (Debian/Ubuntu: `apt-get install graphviz`, macOS: `brew install graphviz`) or use `--format dot`"
                    .into(),
            ));
        }
        Err(e) => return Err(Error::Graphviz(format!("cannot run `dot`: {e}"))),
    };
    // Write on another thread: `dot` may fill its stdout pipe before it has read all its input.
    let mut stdin = child.stdin.take().ok_or_else(|| Error::Graphviz("no stdin for `dot`".into()))?;
    let text = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().map_err(|e| Error::Graphviz(format!("`dot` failed: {e}")))?;
    let written = writer.join().map_err(|_| Error::Graphviz("writing to `dot` panicked".into()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Graphviz(format!("`dot -Tsvg` failed ({}): {}", out.status, msg.trim())));
    }
    written.map_err(|e| Error::Graphviz(format!("writing to `dot`: {e}")))?;
    String::from_utf8(out.stdout).map_err(|e| Error::Graphviz(format!("`dot` wrote invalid UTF-8: {e}")))
}

/// A self-contained HTML page: the SVG at every depth (a selector switches between them, so
/// blocks collapse and expand), zoom with the wheel, pan by dragging; each view opens at its
/// top, as wide as the window allows. `opts.depth` is shown first.
pub fn to_html(g: &Graph, opts: &Options) -> Result<String> {
    let deepest = max_depth(g);
    // Levels that differ from the full drawing, then the full drawing.
    let mut levels: Vec<Option<usize>> = (1..deepest).map(Some).collect();
    levels.push(None);
    let shown = opts.depth.filter(|&d| d < deepest);
    let mut page = String::new();
    let title = html_escape(&g.name);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; font: 14px Helvetica, Arial, sans-serif; }}
header {{ padding: 6px 10px; background: #f3f3f3; border-bottom: 1px solid #ccc; }}
#view {{ position: absolute; top: 38px; bottom: 0; left: 0; right: 0; overflow: hidden; cursor: grab; }}
.level {{ transform-origin: 0 0; display: none; }}
.level.on {{ display: block; }}
</style></head><body>
<header><b>{title}</b> &nbsp; view: <select id="depth">"#
    );
    for (i, l) in levels.iter().enumerate() {
        let label = match l {
            Some(d) => format!("depth {d}"),
            None => "every layer".to_string(),
        };
        let sel = if *l == shown { " selected" } else { "" };
        let _ = write!(page, r#"<option value="{i}"{sel}>{label}</option>"#);
    }
    page.push_str(
        r#"</select> <button id="fit">whole graph</button> &nbsp; wheel: zoom, drag: pan</header>
<div id="view">
"#,
    );
    for (i, l) in levels.iter().enumerate() {
        let svg = render_svg(&to_dot(g, &Options { depth: *l }))?;
        // Drop the XML prologue and doctype: the SVG is inline.
        let start = svg.find("<svg").unwrap_or(0);
        let _ = writeln!(page, r#"<div class="level" id="level{i}">{}</div>"#, &svg[start..]);
    }
    page.push_str(
        r#"</div>
<script>
(function () {
  var view = document.getElementById("view"), sel = document.getElementById("depth");
  var s = 1, x = 0, y = 0, drag = null;
  function cur() { return document.getElementById("level" + sel.value); }
  function apply() { cur().style.transform = "translate(" + x + "px," + y + "px) scale(" + s + ")"; }
  function fit(whole) {
    var svg = cur().querySelector("svg"), w = svg.width.baseVal.value, h = svg.height.baseVal.value;
    s = Math.min(view.clientWidth / w, whole ? view.clientHeight / h : 1, 1);
    x = (view.clientWidth - w * s) / 2; y = 0; apply();
  }
  function show() {
    Array.prototype.forEach.call(document.querySelectorAll(".level"), function (e) { e.classList.remove("on"); });
    cur().classList.add("on"); fit(false);
  }
  view.addEventListener("wheel", function (e) {
    e.preventDefault();
    var k = e.deltaY < 0 ? 1.15 : 1 / 1.15, r = view.getBoundingClientRect();
    var px = e.clientX - r.left, py = e.clientY - r.top;
    x = px - (px - x) * k; y = py - (py - y) * k; s *= k; apply();
  }, { passive: false });
  view.addEventListener("mousedown", function (e) { drag = [e.clientX - x, e.clientY - y]; view.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", function () { drag = null; view.style.cursor = "grab"; });
  window.addEventListener("mousemove", function (e) { if (drag) { x = e.clientX - drag[0]; y = e.clientY - drag[1]; apply(); } });
  sel.addEventListener("change", show);
  document.getElementById("fit").addEventListener("click", function () { fit(true); });
  show();
})();
</script>
</body></html>
"#,
    );
    Ok(page)
}
