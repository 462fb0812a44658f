// Tapestry session room: WebRTC peer to peer with Tapestry's own signalling
// over a WebSocket (same origin). The host (clinician) admits the waiting
// client and makes the offer. Messages from the room are re-dispatched as
// "room-message" events (chat.js listens); "room-send" events are sent.
// State for tests and diagnostics: window.tapestryRoom.
(function () {
  "use strict";
  var root = document.getElementById("room");
  if (!root) { return; }
  var role = root.dataset.role;
  var wantVideo = root.dataset.video === "yes";
  var statusEl = document.getElementById("room-status");
  var room = { pc: null, ws: null, local: null, state: "new", inboundVideoBytes: 0, inboundAudioBytes: 0, quality: "unknown" };
  window.tapestryRoom = room;
  var iceServers = [];
  var pendingCandidates = [];

  function status(text) { statusEl.textContent = text; }
  function byId(id) { return document.getElementById(id); }

  function send(obj) {
    if (room.ws && room.ws.readyState === 1) { room.ws.send(JSON.stringify(obj)); }
  }
  document.addEventListener("room-send", function (e) { send(e.detail); });

  async function joinToken() {
    var url = "/api/v1/clients/" + root.dataset.client + "/appointments/" + root.dataset.appointment + "/join";
    var r = await fetch(url, { method: "POST", credentials: "same-origin", body: "{}",
      headers: { "content-type": "application/json", "x-csrf-token": root.dataset.csrf } });
    var body = await r.json();
    if (!r.ok) { throw new Error((body.error && body.error.message) || "Could not join."); }
    return body;
  }

  async function getMedia(cameraId, micId, video) {
    var constraints = {
      audio: micId ? { deviceId: { exact: micId } } : true,
      video: video ? (cameraId ? { deviceId: { exact: cameraId } } : true) : false
    };
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      if (video) {
        // Fallback: audio only.
        status("No camera available: continuing with audio only.");
        return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      }
      throw err;
    }
  }

  async function listDevices() {
    var cam = byId("camera"), mic = byId("microphone");
    if (!cam || !mic || !navigator.mediaDevices.enumerateDevices) { return; }
    var devices = await navigator.mediaDevices.enumerateDevices();
    cam.textContent = ""; mic.textContent = "";
    devices.forEach(function (d) {
      var o = document.createElement("option");
      o.value = d.deviceId; o.textContent = d.label || d.kind;
      if (d.kind === "videoinput") { cam.appendChild(o); }
      if (d.kind === "audioinput") { mic.appendChild(o); }
    });
  }

  function showLocal() {
    var v = byId("local-video");
    if (v && room.local) { v.srcObject = room.local; }
  }

  function sender(kind) {
    if (!room.pc) { return null; }
    return room.pc.getSenders().find(function (s) { return s.track && s.track.kind === kind; }) ||
      room.pc.getSenders().find(function (s) { return !s.track && s._kind === kind; }) || null;
  }

  async function replaceTrack(kind, track) {
    var s = sender(kind);
    if (s) { await s.replaceTrack(track); if (!track) { s._kind = kind; } }
  }

  function newPeer() {
    if (room.pc) { room.pc.close(); }
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    room.pc = pc;
    if (room.local) {
      room.local.getTracks().forEach(function (t) { pc.addTrack(t, room.local); });
    }
    if (!room.local || room.local.getVideoTracks().length === 0) {
      pc.addTransceiver("video", { direction: "recvonly" });
    }
    pc.onicecandidate = function (e) { if (e.candidate) { send({ type: "signal", data: { candidate: e.candidate } }); } };
    pc.ontrack = function (e) {
      var v = byId("remote-video");
      if (v && e.streams[0]) { v.srcObject = e.streams[0]; }
    };
    pc.onconnectionstatechange = function () {
      room.state = pc.connectionState;
      if (pc.connectionState === "connected") { status("Connected."); }
      if (pc.connectionState === "failed") { status("The connection failed. Your network may need a TURN server."); }
    };
    return pc;
  }

  async function onSignal(data) {
    if (!room.pc) { newPeer(); }
    var pc = room.pc;
    if (data.sdp) {
      await pc.setRemoteDescription(data.sdp);
      while (pendingCandidates.length) { await pc.addIceCandidate(pendingCandidates.shift()); }
      if (data.sdp.type === "offer") {
        await pc.setLocalDescription(await pc.createAnswer());
        send({ type: "signal", data: { sdp: pc.localDescription } });
      }
    } else if (data.candidate) {
      if (pc.remoteDescription) { await pc.addIceCandidate(data.candidate); }
      else { pendingCandidates.push(data.candidate); }
    }
  }

  async function call() {
    var pc = newPeer();
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "signal", data: { sdp: pc.localDescription } });
  }

  async function onMessage(msg) {
    document.dispatchEvent(new CustomEvent("room-message", { detail: msg }));
    switch (msg.type) {
      case "hello":
        if (msg.ice_servers && msg.ice_servers.length) { iceServers = msg.ice_servers; }
        status(role === "host" ? "Waiting for the client to arrive." : "Connecting to the room…");
        break;
      case "waiting": status("You are in the waiting room. Your clinician will let you in."); break;
      case "knock": status("The client is in the waiting room."); if (byId("admit")) { byId("admit").hidden = false; } break;
      case "admitted": status("You have been admitted."); break;
      case "peer_joined":
        if (byId("admit")) { byId("admit").hidden = true; }
        status("Starting the call…");
        if (msg.initiator) { await call(); } else { newPeer(); }
        break;
      case "signal": await onSignal(msg.data); break;
      case "peer_left": status("The other participant left."); if (room.pc) { room.pc.close(); room.pc = null; room.state = "closed"; } break;
      case "error": status(msg.message); break;
    }
  }

  async function measure() {
    if (!room.pc) { return; }
    var stats = await room.pc.getStats();
    var rtt = null, lost = 0, received = 0, video = 0, audio = 0;
    stats.forEach(function (s) {
      if (s.type === "candidate-pair" && s.state === "succeeded" && s.currentRoundTripTime !== undefined) { rtt = s.currentRoundTripTime; }
      if (s.type === "inbound-rtp") {
        lost += s.packetsLost || 0; received += s.packetsReceived || 0;
        if (s.kind === "video") { video += s.bytesReceived || 0; }
        if (s.kind === "audio") { audio += s.bytesReceived || 0; }
      }
    });
    room.inboundVideoBytes = video; room.inboundAudioBytes = audio;
    var loss = received + lost > 0 ? lost / (received + lost) : 0;
    var q = "unknown";
    if (rtt !== null) { q = (rtt < 0.15 && loss < 0.02) ? "good" : (rtt < 0.4 && loss < 0.08) ? "fair" : "poor"; }
    room.quality = q;
    var el = byId("quality"); if (el) { el.textContent = q; }
  }

  function toggle(id, on, offText, onText) {
    var b = byId(id); b.setAttribute("aria-pressed", on ? "true" : "false"); b.textContent = on ? onText : offText;
  }

  function wireControls() {
    var muted = false, camOff = false, sharing = false, audioOnly = false;
    if (!byId("mute")) { return; }
    byId("mute").addEventListener("click", function () {
      muted = !muted;
      room.local && room.local.getAudioTracks().forEach(function (t) { t.enabled = !muted; });
      toggle("mute", muted, "Mute", "Unmute");
    });
    byId("camera-off").addEventListener("click", function () {
      camOff = !camOff;
      room.local && room.local.getVideoTracks().forEach(function (t) { t.enabled = !camOff; });
      toggle("camera-off", camOff, "Camera off", "Camera on");
    });
    byId("share").addEventListener("click", async function () {
      var cam = room.local && room.local.getVideoTracks()[0];
      if (!sharing) {
        try {
          var screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
          var track = screen.getVideoTracks()[0];
          track.onended = function () { if (sharing) { byId("share").click(); } };
          await replaceTrack("video", track);
          sharing = true;
        } catch (e) { status("Screen sharing was not started."); }
      } else {
        await replaceTrack("video", cam || null);
        sharing = false;
      }
      toggle("share", sharing, "Share screen", "Stop sharing");
    });
    byId("audio-only").addEventListener("click", async function () {
      audioOnly = !audioOnly;
      if (audioOnly) {
        room.local && room.local.getVideoTracks().forEach(function (t) { t.stop(); room.local.removeTrack(t); });
        await replaceTrack("video", null);
      } else {
        var fresh = await getMedia(byId("camera").value, null, true);
        var vt = fresh.getVideoTracks()[0];
        if (vt) { room.local.addTrack(vt); await replaceTrack("video", vt); }
        showLocal();
      }
      toggle("audio-only", audioOnly, "Audio only", "Turn video back on");
    });
    async function switchDevice(kind) {
      var fresh = await getMedia(byId("camera").value, byId("microphone").value, kind === "video" || (room.local && room.local.getVideoTracks().length > 0));
      var t = kind === "video" ? fresh.getVideoTracks()[0] : fresh.getAudioTracks()[0];
      if (!t) { return; }
      var old = kind === "video" ? room.local.getVideoTracks()[0] : room.local.getAudioTracks()[0];
      if (old) { old.stop(); room.local.removeTrack(old); }
      room.local.addTrack(t);
      await replaceTrack(kind, t);
      showLocal();
    }
    byId("camera").addEventListener("change", function () { switchDevice("video"); });
    byId("microphone").addEventListener("change", function () { switchDevice("audio"); });
  }

  async function start() {
    try {
      if (wantVideo) {
        try {
          room.local = await getMedia(null, null, true);
        } catch (e) {
          status("No camera or microphone could be opened; you can still see and hear the other side.");
        }
        showLocal();
        await listDevices();
        wireControls();
        setInterval(measure, 1000);
      }
      var grant = await joinToken();
      if (grant.ice_servers && grant.ice_servers.length) { iceServers = grant.ice_servers; }
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(scheme + location.host + grant.ws_path);
      room.ws = ws;
      ws.onmessage = function (e) { try { onMessage(JSON.parse(e.data)); } catch (err) { status("A message from the room could not be read."); } };
      ws.onclose = function () { status("Disconnected from the room."); };
      var admit = byId("admit");
      if (admit) { admit.addEventListener("click", function () { send({ type: "admit" }); }); }
    } catch (e) {
      status(e.message || "Could not join.");
    }
  }
  start();
})();
