"""An IP camera for tests: GStreamer's RTSP server with a live x264 picture, AAC audio and a
password. Runs under Debian's python3 (python3-gi, gir1.2-gst-rtsp-server-1.0):

    /usr/bin/python3 tests/support/rtspcamera.py PORT USER PASSWORD [WIDTHxHEIGHT] [VIDEO]

VIDEO: h264 (baseline, the default), h264-bframes (main profile with B-frames), h265, mjpeg;
then options: "noaudio" leaves the AAC track out; "tls=FILE" (a PEM with certificate and key)
serves RTSP over TLS (rtsps://).

Serves rtsp://USER:PASSWORD@127.0.0.1:PORT/stream1 and prints "ready" when it listens, then
"client connected" and "client closed" as RTSP clients come and go, and "transport X" for
each track a client sets up (RTP/AVP/TCP interleaved, RTP/AVP over UDP).
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bframes=0 bitrate={kbps} "
            "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h264-bframes": "x264enc speed-preset=ultrafast key-int-max=30 bframes=2 b-adapt=false bitrate={kbps} "
                    "! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate={kbps} "
            "! rtph265pay name=pay0 pt=96 config-interval=-1",
    "mjpeg": "video/x-raw,format=I420 ! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26",  # 4:2:0, as RTP JPEG needs
}


def main() -> None:
    port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    width, height = (int(x) for x in (sys.argv[4] if len(sys.argv) > 4 else "640x360").split("x"))
    kbps = max(300, width * height * 30 * 7 // 100_000)  # 640×360: 483 kbit/s, 1280×720: 1935
    video = VIDEO[sys.argv[5] if len(sys.argv) > 5 else "h264"].format(kbps=kbps)
    options = sys.argv[6:]
    audio = "noaudio" not in options
    tls = next((o.split("=", 1)[1] for o in options if o.startswith("tls=")), None)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1 "
        f"! videoconvert ! {video} "
        + ("audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=1 ! audioconvert "
           "! avenc_aac ! rtpmp4gpay name=pay1 pt=97 " if audio else "") + ")")
    factory.set_shared(True)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    if tls is not None:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(tls))
    server.set_auth(auth)

    def on_client(_server: object, client: GstRtspServer.RTSPClient) -> None:
        print("client connected", flush=True)
        client.connect("closed", lambda _client: print("client closed", flush=True))
        client.connect("setup-request", on_setup)

    def on_setup(_client: object, context: GstRtspServer.RTSPContext) -> None:
        ok, transport = context.request.get_header(GstRtsp.RTSPHeaderField.TRANSPORT, 0)
        if ok == GstRtsp.RTSPResult.OK:
            print(f"transport {transport.split(';', 1)[0]}", flush=True)

    server.connect("client-connected", on_client)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role_from_structure(Gst.Structure.from_string(
        "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/stream1", factory)
    if server.attach(None) == 0:
        print("could not listen", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
