"""The VM lifecycle through Debian's python3-cs, the way Ansible's modules drive it.

Usage: cs_compute.py ENDPOINT APIKEY SECRET  -> prints a JSON summary for the Node test.
"""
import json
import sys

from cs import CloudStack, CloudStackApiException

endpoint, key, secret = sys.argv[1:4]
api = CloudStack(endpoint=endpoint, key=key, secret=secret, timeout=60, poll_interval=0.2)
out = {}

zone = api.listZones(fetch_list=True)[0]
template = api.listTemplates(templatefilter="executable", zoneid=zone["id"], isrecursive=True, fetch_list=True)[0]
offering = [o for o in api.listServiceOfferings(fetch_list=True) if o["name"] == "Small Instance"][0]
disk = [d for d in api.listDiskOfferings(fetch_list=True) if d["iscustomized"]][0]

vm = api.deployVirtualMachine(zoneid=zone["id"], templateid=template["id"], serviceofferingid=offering["id"],
                              name="cs-vm", displayname="cs vm", startvm=True, fetch_result=True)["virtualmachine"]
out["deployed"] = {k: vm.get(k) for k in ("name", "displayname", "state", "keypair")}
out["nic_ip"] = vm["nic"][0].get("ipaddress")
out["listed"] = [v["name"] for v in api.listVirtualMachines(fetch_list=True)]
out["stopped"] = api.stopVirtualMachine(id=vm["id"], fetch_result=True)["virtualmachine"]["state"]
out["started"] = api.startVirtualMachine(id=vm["id"], fetch_result=True)["virtualmachine"]["state"]
vol = api.createVolume(name="cs-data", diskofferingid=disk["id"], zoneid=zone["id"], size=1, fetch_result=True)["volume"]
out["attached"] = "attached" in api.attachVolume(id=vol["id"], virtualmachineid=vm["id"], fetch_result=True)["volume"]
out["detached"] = "attached" not in api.detachVolume(id=vol["id"], fetch_result=True)["volume"]
out["deleted_volume"] = api.deleteVolume(id=vol["id"])["success"]
out["destroyed"] = api.destroyVirtualMachine(id=vm["id"], expunge=True, fetch_result=True)["virtualmachine"]["state"]
try:
    api.startVirtualMachine(id=vm["id"], fetch_result=True)
    out["start_gone"] = None
except CloudStackApiException as e:
    out["start_gone"] = e.response.status_code
print(json.dumps(out))
