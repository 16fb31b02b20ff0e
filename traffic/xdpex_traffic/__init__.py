"""xdpex traffic tools: wire codec, scapy layers, client library, lab."""
