// Cronium dashboard: the little the pages need from a script. Everything
// from users is put in the page as text (textContent), never as HTML.
"use strict";

function fmtBytes(n) {
  const units = ["B", "Ki", "Mi", "Gi", "Ti"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + units[i];
}

// Bars, timelines and charts carry their size as data-share (a percent):
// the page's Content-Security-Policy allows no inline styles.
function applyShares(root) {
  root.querySelectorAll("[data-share]").forEach(function (el) {
    const share = parseFloat(el.dataset.share) || 0;
    if (el.classList.contains("seg")) {
      el.style.height = share + "%";
    } else {
      el.style.width = share + "%";
    }
  });
}

// Times are rendered in UTC; show them in the viewer's zone (one formatter
// for all: making one per element is slow on a page of 1,000 events).
function localTimes(root) {
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  root.querySelectorAll("time[data-local]").forEach(function (el) {
    const d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) { return; }
    el.title = "UTC: " + d.toISOString();
    el.textContent = fmt.format(d);
  });
}

function bar(key, name) {
  const list = document.getElementById("usage");
  if (!list) { return null; }
  let li = list.querySelector('li[data-key="' + key + '"]');
  if (!li) {
    const empty = document.getElementById("usage-empty");
    if (empty) { empty.remove(); }
    li = document.createElement("li");
    li.dataset.key = key;
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = name;
    const track = document.createElement("span");
    track.className = "bar";
    track.setAttribute("role", "img");
    const fill = document.createElement("span");
    fill.className = "fill";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    const used = document.createElement("span");
    used.className = "used";
    value.appendChild(used);
    li.append(label, track, value);
    list.appendChild(li);
  }
  return li;
}

function setBar(key, name, used, share, limitText) {
  const li = bar(key, name);
  if (!li) { return; }
  li.querySelector(".used").textContent = used;
  const fill = li.querySelector(".fill");
  if (share !== null) { fill.style.width = Math.min(100, share) + "%"; }
  li.querySelector(".bar").setAttribute("aria-label", name + ": " + used + (limitText ? " of " + limitText : ""));
}

function showUsage(u) {
  setBar("memory", "Memory", fmtBytes(u.memory_bytes), u.peak_memory_bytes ? 100 * u.memory_bytes / u.peak_memory_bytes : 0, "peak " + fmtBytes(u.peak_memory_bytes));
  setBar("cpu", "CPU", u.cpu_seconds.toFixed(2) + " s", null, "");
  setBar("pids", "Processes", String(u.pids), null, "");
}

function setStatus(text) {
  const st = document.getElementById("status");
  if (st && st.textContent !== text && (st.textContent === "queued" || st.textContent === "claimed")) {
    st.textContent = text;
    st.className = "badge info";
    // It no longer waits.
    ["reason", "reason-label"].forEach(function (id) {
      const el = document.getElementById(id);
      if (el) { el.remove(); }
    });
  }
}

// Live logs: Server-Sent Events, resumed where they stopped after a
// reconnect (the browser sends Last-Event-ID); the view follows the end
// unless the reader scrolled up.
function followLogs() {
  const pre = document.getElementById("logs");
  if (!pre || !pre.dataset.stream) { return; }
  const state = document.getElementById("stream-state");
  pre.scrollTop = pre.scrollHeight;
  const es = new EventSource(pre.dataset.stream);
  function append(stream) {
    return function (ev) {
      const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
      const span = document.createElement("span");
      span.className = stream;
      span.textContent = JSON.parse(ev.data);
      pre.appendChild(span);
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
      setStatus("running");
      state.textContent = "Following live.";
    };
  }
  es.addEventListener("stdout", append("stdout"));
  es.addEventListener("stderr", append("stderr"));
  es.addEventListener("usage", function (ev) {
    showUsage(JSON.parse(ev.data));
    setStatus("running");
  });
  es.addEventListener("end", function () {
    es.close();
    state.textContent = "Finished: loading the result…";
    window.location.reload();
  });
  es.addEventListener("unauthorized", function () {
    es.close();
    state.textContent = "The live log stopped: this session ended (signed out, revoked or expired). Reload the page to sign in again.";
  });
  es.addEventListener("shutdown", function () {
    state.textContent = "The server is restarting: reconnecting…";
  });
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) {
      state.textContent = "The log stream stopped: reload the page to follow again.";
    } else {
      state.textContent = "Reconnecting…";
    }
  };
}

document.addEventListener("DOMContentLoaded", function () {
  applyShares(document);
  localTimes(document);
  followLogs();
});
