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
  var group = root.dataset.group === "yes";
  var room = { id: null, peers: {}, inbound: {}, ws: null, local: null, state: "new", inboundVideoBytes: 0, inboundAudioBytes: 0, quality: "unknown" };
  window.tapestryRoom = room;
  var iceServers = [];

  function status(text) { statusEl.textContent = text; }
  function byId(id) { return document.getElementById(id); }

  function send(obj) {
    if (room.ws && room.ws.readyState === 1) { room.ws.send(JSON.stringify(obj)); }
  }
  document.addEventListener("room-send", function (e) { send(e.detail); });

  async function joinToken() {
    var url = root.dataset.join;
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

  // One RTCPeerConnection per remote participant (a full mesh; a
  // one-to-one session is a mesh of two). room.peers[id] = {pc, pending, state}.
  function senders(kind) {
    var out = [];
    Object.keys(room.peers).forEach(function (id) {
      var pc = room.peers[id].pc;
      var s = pc.getSenders().find(function (x) { return x.track && x.track.kind === kind; }) ||
        pc.getSenders().find(function (x) { return !x.track && x._kind === kind; });
      if (s) { out.push(s); }
    });
    return out;
  }

  async function replaceTrack(kind, track) {
    var list = senders(kind);
    for (var i = 0; i < list.length; i++) {
      await list[i].replaceTrack(track);
      if (!track) { list[i]._kind = kind; }
    }
  }

  function overallState() {
    var ids = Object.keys(room.peers);
    if (ids.length === 0) { return room.state === "new" ? "new" : "closed"; }
    var states = ids.map(function (id) { return room.peers[id].state; });
    if (states.every(function (x) { return x === "connected"; })) { return "connected"; }
    if (states.some(function (x) { return x === "failed"; })) { return "failed"; }
    return "connecting";
  }

  function tile(id) {
    var tiles = byId("tiles");
    if (!tiles) { return null; }
    var v = byId("peer-" + id);
    if (!v) {
      v = document.createElement("video");
      v.id = "peer-" + id; v.autoplay = true; v.playsInline = true;
      v.setAttribute("aria-label", "Participant " + (Object.keys(room.peers).length));
      tiles.appendChild(v);
    }
    return v;
  }

  function dropPeer(id) {
    var p = room.peers[id];
    if (p) { p.pc.close(); delete room.peers[id]; }
    var v = byId("peer-" + id);
    if (v) { v.remove(); }
    delete room.inbound[id];
    room.state = overallState();
  }

  function newPeer(id) {
    if (room.peers[id]) { room.peers[id].pc.close(); }
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    var peer = { pc: pc, pending: [], state: "new" };
    room.peers[id] = peer;
    if (room.local) {
      room.local.getTracks().forEach(function (t) { pc.addTrack(t, room.local); });
    }
    if (!room.local || room.local.getVideoTracks().length === 0) {
      pc.addTransceiver("video", { direction: "recvonly" });
    }
    pc.onicecandidate = function (e) { if (e.candidate) { send({ type: "signal", to: id, data: { candidate: e.candidate } }); } };
    pc.ontrack = function (e) {
      var v = tile(id);
      if (v && e.streams[0]) { v.srcObject = e.streams[0]; }
    };
    pc.onconnectionstatechange = function () {
      peer.state = pc.connectionState;
      room.state = overallState();
      if (room.state === "connected") { status("Connected."); }
      if (pc.connectionState === "failed") { status("A connection failed. Your network may need a TURN server."); }
    };
    tile(id);
    return peer;
  }

  async function onSignal(from, data) {
    var peer = room.peers[from] || newPeer(from);
    var pc = peer.pc;
    if (data.sdp) {
      await pc.setRemoteDescription(data.sdp);
      while (peer.pending.length) { await pc.addIceCandidate(peer.pending.shift()); }
      if (data.sdp.type === "offer") {
        await pc.setLocalDescription(await pc.createAnswer());
        send({ type: "signal", to: from, data: { sdp: pc.localDescription } });
      }
    } else if (data.candidate) {
      if (pc.remoteDescription) { await pc.addIceCandidate(data.candidate); }
      else { peer.pending.push(data.candidate); }
    }
  }

  async function call(id) {
    var pc = newPeer(id).pc;
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "signal", to: id, data: { sdp: pc.localDescription } });
  }

  async function onMessage(msg) {
    document.dispatchEvent(new CustomEvent("room-message", { detail: msg }));
    switch (msg.type) {
      case "hello":
        room.id = msg.id;
        if (msg.ice_servers && msg.ice_servers.length) { iceServers = msg.ice_servers; }
        status(role === "host" ? (group ? "Waiting for members to arrive." : "Waiting for the client to arrive.") : "Connecting to the room…");
        break;
      case "waiting": status(group ? "You are in the waiting room. The facilitator will let you in." : "You are in the waiting room. Your clinician will let you in."); break;
      case "knock": status(group ? "Someone is in the waiting room." : "The client is in the waiting room."); if (byId("admit")) { byId("admit").hidden = false; } break;
      case "admitted": status("You have been admitted."); break;
      case "peer_joined":
        if (byId("admit")) { byId("admit").hidden = true; }
        status("Starting the call…");
        if (msg.initiator) { await call(msg.id); } else if (!room.peers[msg.id]) { newPeer(msg.id); }
        break;
      case "signal": await onSignal(msg.from, msg.data); break;
      case "peer_left":
        status(group ? "A participant left." : "The other participant left.");
        if (msg.id !== undefined) { dropPeer(msg.id); } else { Object.keys(room.peers).forEach(dropPeer); }
        if (Object.keys(room.peers).length === 0) { room.state = "closed"; }
        break;
      case "room_full": status(msg.message); break;
      case "error": status(msg.message); break;
    }
  }

  // Inbound bytes per peer (room.inbound[id]) and in total; the quality
  // shown is the worst round trip and loss over all peers.
  async function measure() {
    var ids = Object.keys(room.peers);
    if (ids.length === 0) { return; }
    var rtt = null, lost = 0, received = 0, video = 0, audio = 0;
    for (var i = 0; i < ids.length; i++) {
      var stats = await room.peers[ids[i]].pc.getStats();
      var peerVideo = 0;
      stats.forEach(function (s) {
        if (s.type === "candidate-pair" && s.state === "succeeded" && s.currentRoundTripTime !== undefined) {
          rtt = rtt === null ? s.currentRoundTripTime : Math.max(rtt, s.currentRoundTripTime);
        }
        if (s.type === "inbound-rtp") {
          lost += s.packetsLost || 0; received += s.packetsReceived || 0;
          if (s.kind === "video") { video += s.bytesReceived || 0; peerVideo += s.bytesReceived || 0; }
          if (s.kind === "audio") { audio += s.bytesReceived || 0; }
        }
      });
      room.inbound[ids[i]] = peerVideo;
    }
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
