// Command ll-hls-peer is the latency benchmark's reference: RTMP in, Low-Latency HLS out,
// passthrough (no transcoding), made of the two libraries that MediaMTX v1.20.1 uses for
// these protocols (gortmplib for the RTMP server, gohlslib for the HLS muxer and its
// blocking-reload HTTP handling), set up with MediaMTX's defaults:
//
//	hlsVariant: lowLatency, hlsSegmentCount: 7, hlsSegmentDuration: 1s, hlsPartDuration: 200ms,
//	hlsSegmentMaxSize: 50M, hlsAllowOrigins: ["*"], responses not cached (no CDN secret)
//
// One publisher at a time. A publish to rtmp://HOST:PORT/APP/NAME plays at
// http://HOST:PORT/APP/NAME/index.m3u8 (the multivariant playlist, as in MediaMTX). Unlike
// MediaMTX, which starts a muxer when the first player asks (hlsAlwaysRemux: false), the
// muxer starts with the publish, so that the benchmark measures steady state.
//
// PROGRAM-DATE-TIME: gohlslib writes the NTP time given with each sample. As MediaMTX does
// for sources without absolute time (RTMP), that time is the arrival time of the track's
// first sample plus the PTS elapsed since, taken again from the clock whenever it would lie
// in the future or more than 5 s in the past: the time of receipt at the server, not the
// time of capture.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	hlscodecs "github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
)

func main() {
	rtmpAddr := flag.String("rtmp", "127.0.0.1:1935", "RTMP listen address")
	httpAddr := flag.String("http", "127.0.0.1:8888", "HTTP listen address")
	variant := flag.String("variant", "lowLatency", "HLS variant: lowLatency, fmp4 or mpegts")
	segmentCount := flag.Int("segment-count", 7, "segments in the playlist")
	segmentDuration := flag.Duration("segment-duration", time.Second, "minimum segment duration")
	partDuration := flag.Duration("part-duration", 200*time.Millisecond, "minimum part duration")
	flag.Parse()

	v, err := parseVariant(*variant)
	if err != nil {
		log.Fatal(err)
	}
	p := &peer{settings: gohlslib.Muxer{
		Variant:            v,
		SegmentCount:       *segmentCount,
		SegmentMinDuration: *segmentDuration,
		PartMinDuration:    *partDuration,
		SegmentMaxSize:     50 * 1024 * 1024,
	}}

	rtmpListener, err := net.Listen("tcp", *rtmpAddr)
	if err != nil {
		log.Fatal(err)
	}
	httpListener, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("RTMP on %s, HLS on http://%s/APP/NAME/index.m3u8", rtmpListener.Addr(), httpListener.Addr())
	go func() { log.Fatal(http.Serve(httpListener, http.HandlerFunc(p.serveHTTP))) }()
	for {
		conn, err := rtmpListener.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer conn.Close()
			if err := p.handleRTMP(conn); err != nil {
				log.Printf("RTMP %s: %v", conn.RemoteAddr(), err)
			}
		}()
	}
}

func parseVariant(name string) (gohlslib.MuxerVariant, error) {
	switch name {
	case "lowLatency":
		return gohlslib.MuxerVariantLowLatency, nil
	case "fmp4":
		return gohlslib.MuxerVariantFMP4, nil
	case "mpegts":
		return gohlslib.MuxerVariantMPEGTS, nil
	}
	return 0, fmt.Errorf("unknown variant %q", name)
}

// peer holds the one stream being published, if any.
type peer struct {
	settings gohlslib.Muxer

	mutex sync.Mutex
	name  string // APP/NAME of the publisher
	muxer *gohlslib.Muxer
}

func (p *peer) handleRTMP(conn net.Conn) error {
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := &gortmplib.ServerConn{RW: conn}
	if err := sc.Initialize(); err != nil {
		return err
	}
	if err := sc.AcceptConn(); err != nil {
		return err
	}
	if !sc.Publish {
		return errors.New("only publishing is supported")
	}
	name := strings.Trim(sc.URL.Path, "/")
	reader := &gortmplib.Reader{Conn: sc}
	if err := reader.Initialize(); err != nil {
		return err
	}

	muxer := &gohlslib.Muxer{
		Variant:            p.settings.Variant,
		SegmentCount:       p.settings.SegmentCount,
		SegmentMinDuration: p.settings.SegmentMinDuration,
		PartMinDuration:    p.settings.PartMinDuration,
		SegmentMaxSize:     p.settings.SegmentMaxSize,
		OnEncodeError:      func(err error) { log.Printf("%s: %v", name, err) },
	}
	for _, track := range reader.Tracks() {
		if err := addTrack(reader, muxer, track); err != nil {
			return err
		}
	}
	if err := muxer.Start(); err != nil {
		return err
	}
	defer muxer.Close()

	p.mutex.Lock()
	if p.muxer != nil {
		p.mutex.Unlock()
		return fmt.Errorf("%s: another stream is being published", name)
	}
	p.name, p.muxer = name, muxer
	p.mutex.Unlock()
	defer func() {
		p.mutex.Lock()
		p.name, p.muxer = "", nil
		p.mutex.Unlock()
	}()
	log.Printf("%s: publishing %d tracks", name, len(muxer.Tracks))

	for {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := reader.Read(); err != nil {
			return err
		}
	}
}

// addTrack passes one RTMP track through to the muxer: H.264 video or AAC audio.
func addTrack(reader *gortmplib.Reader, muxer *gohlslib.Muxer, track *gortmplib.Track) error {
	switch codec := track.Codec.(type) {
	case *rtmpcodecs.H264:
		out := &gohlslib.Track{Codec: &hlscodecs.H264{SPS: codec.SPS, PPS: codec.PPS}, ClockRate: 90000}
		muxer.Tracks = append(muxer.Tracks, out)
		clock := &receiptClock{rate: out.ClockRate}
		reader.OnDataH264(track, func(pts time.Duration, _ time.Duration, au [][]byte) {
			ticks := toTicks(pts, out.ClockRate)
			au = withParameterSets(au, codec.SPS, codec.PPS)
			if err := muxer.WriteH264(out, clock.at(ticks), ticks, au); err != nil {
				logLimited("video", err)
			}
		})
	case *rtmpcodecs.MPEG4Audio:
		out := &gohlslib.Track{
			Codec:     &hlscodecs.MPEG4Audio{Config: *codec.Config},
			ClockRate: codec.Config.SampleRate,
		}
		muxer.Tracks = append(muxer.Tracks, out)
		clock := &receiptClock{rate: out.ClockRate}
		reader.OnDataMPEG4Audio(track, func(pts time.Duration, au []byte) {
			ticks := toTicks(pts, out.ClockRate)
			if err := muxer.WriteMPEG4Audio(out, clock.at(ticks), ticks, [][]byte{au}); err != nil {
				logLimited("audio", err)
			}
		})
	default:
		return fmt.Errorf("unsupported codec %T: the benchmark pushes H.264 and AAC", track.Codec)
	}
	return nil
}

// withParameterSets puts SPS and PPS in front of an IDR access unit that lacks them: FLV
// carries them apart, in the decoder configuration, while the muxer reads them in-band.
func withParameterSets(au [][]byte, sps, pps []byte) [][]byte {
	idr, hasSPS := false, false
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch nalu[0] & 0x1f {
		case 5:
			idr = true
		case 7:
			hasSPS = true
		}
	}
	if !idr || hasSPS || sps == nil || pps == nil {
		return au
	}
	return append([][]byte{sps, pps}, au...)
}

var logged = map[string]int{}
var loggedMutex sync.Mutex

// logLimited logs the first few errors of each kind, not one per frame.
func logLimited(kind string, err error) {
	loggedMutex.Lock()
	defer loggedMutex.Unlock()
	logged[kind]++
	if logged[kind] <= 5 {
		log.Printf("%s: %v", kind, err)
	}
}

func toTicks(d time.Duration, rate int) int64 {
	whole := int64(d / time.Second)
	rest := int64(d % time.Second)
	return whole*int64(rate) + rest*int64(rate)/int64(time.Second)
}

// receiptClock gives each sample of a track the wall-clock time it was received at: the
// arrival of an anchor sample plus the PTS elapsed since, so that jitter in arrival does not
// reach the timestamps; a new anchor when that time would be in the future (a sample came
// early) or more than 5 s old (the source paused).
type receiptClock struct {
	rate       int
	anchor     time.Time
	anchorTick int64
}

func (c *receiptClock) at(tick int64) time.Time {
	now := time.Now().Round(0) // the wall clock, without the monotonic reading
	if !c.anchor.IsZero() {
		elapsed := time.Duration(tick-c.anchorTick) * time.Second / time.Duration(c.rate)
		t := c.anchor.Add(elapsed)
		if !t.After(now) && !t.Before(now.Add(-5*time.Second)) {
			return t
		}
	}
	c.anchor, c.anchorTick = now, tick
	return now
}

// serveHTTP answers /APP/NAME/FILE for the stream being published, through gohlslib's
// handler (which holds blocking reloads), with MediaMTX's default headers: any origin, and no
// caching of successful responses.
func (p *peer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "OPTIONS, GET")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Range")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	p.mutex.Lock()
	name, muxer := p.name, p.muxer
	p.mutex.Unlock()
	if muxer == nil || path.Dir(strings.TrimPrefix(r.URL.Path, "/")) != name {
		http.NotFound(w, r)
		return
	}
	muxer.Handle(&noCache{ResponseWriter: w}, r)
}

// noCache marks successful responses as not cacheable, as MediaMTX does for players that do
// not come through a CDN.
type noCache struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *noCache) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if status == http.StatusOK {
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *noCache) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ResponseWriter.Write(b)
}
