"""Runs the Advanced zone wizard's calls with Debian's python3-cs (exoscale `cs`), as an operator's script would.

Usage: cs_advanced_zone.py ENDPOINT APIKEY SECRET
Prints one JSON object with what the calls returned, for the Node test to check.
"""
import json
import sys

from cs import CloudStack, CloudStackApiException

endpoint, key, secret = sys.argv[1:4]
api = CloudStack(endpoint=endpoint, key=key, secret=secret, timeout=30, poll_interval=0.2, fetch_result=True)
out = {}

zone = api.createZone(name="cs-adv", networktype="Advanced", dns1="8.8.8.8", internaldns1="10.0.0.2")["zone"]
out["zone"] = zone
physical = api.createPhysicalNetwork(zoneid=zone["id"], name="cs-phys", isolationmethods="VXLAN", vlan="6000-6099")
out["physical"] = physical["physicalnetwork"]
pid = out["physical"]["id"]
for traffic, label in (("Guest", None), ("Management", None), ("Public", "nimbopub0")):
    args = {"physicalnetworkid": pid, "traffictype": traffic}
    if label:
        args["kvmnetworklabel"] = label
    api.addTrafficType(**args)
api.updatePhysicalNetwork(id=pid, state="Enabled")

# As Marvin's zone setup: configure each router element, then enable its provider.
enabled = []
for nsp in api.listNetworkServiceProviders(physicalnetworkid=pid, fetch_list=True):
    if nsp["name"] not in ("VirtualRouter", "VpcVirtualRouter"):
        continue
    element = api.listVirtualRouterElements(nspid=nsp["id"], fetch_list=True)[0]
    api.configureVirtualRouterElement(id=element["id"], enabled="true")
    done = api.updateNetworkServiceProvider(id=nsp["id"], state="Enabled")["networkserviceprovider"]
    enabled.append(done["name"])
out["enabled"] = enabled

out["range"] = api.createVlanIpRange(
    zoneid=zone["id"], forvirtualnetwork="true", vlan="untagged",
    gateway="100.64.0.1", netmask="255.255.255.0", startip="100.64.0.10", endip="100.64.0.14",
)["vlan"]
out["ranges"] = api.listVlanIpRanges(zoneid=zone["id"], forvirtualnetwork="true", fetch_list=True)

out["offering"] = api.createNetworkOffering(
    name="cs-isolated", displaytext="cs isolated", guestiptype="Isolated", traffictype="GUEST",
    supportedservices="Dhcp,Dns,SourceNat,PortForwarding",
    serviceproviderlist=[
        {"service": "Dhcp", "provider": "VirtualRouter"},
        {"service": "SourceNat", "provider": "VirtualRouter"},
    ],
)["networkoffering"]

try:
    api.createVlanIpRange(
        zoneid=zone["id"], forvirtualnetwork="true",
        gateway="100.64.0.1", netmask="255.255.255.0", startip="100.64.0.12", endip="100.64.0.20",
    )
    out["refused"] = None
except CloudStackApiException as e:
    out["refused"] = {"errorcode": e.error.get("errorcode"), "errortext": e.error.get("errortext")}

print(json.dumps(out))
