"""Registers and finds a template with Debian's python3-cs the way Ansible's cs_template does.

Usage: cs_templates.py ENDPOINT APIKEY SECRET ZONEID OSTYPEID URL CHECKSUM
Prints one JSON object with what the calls returned, for the Node test to check.
"""
import json
import sys
import time

from cs import CloudStack

endpoint, key, secret, zone, ostype, url, checksum = sys.argv[1:8]
api = CloudStack(endpoint=endpoint, key=key, secret=secret, timeout=30)
out = {}

# cs_template (state=present): look the template up first, then register it if absent.
args = {"templatefilter": "executable", "zoneid": zone, "isrecursive": True, "fetch_list": True}
out["before"] = [t["name"] for t in api.listTemplates(**args)]
registered = api.registerTemplate(
    name="ansible-tpl", displaytext="Ansible template", url=url, format="QCOW2", hypervisor="KVM",
    ostypeid=ostype, zoneid=zone, checksum=checksum, isextractable=False, isfeatured=False,
    ispublic=False, passwordenabled=True, sshkeyenabled=True, requireshvm=True, isdynamicallyscalable=False,
)
out["registered"] = registered["template"][0]
# cs_template with wait_for_template... polls listTemplates until the template is ready.
for _ in range(100):
    found = [t for t in api.listTemplates(**args) if t["name"] == "ansible-tpl"]
    if found and found[0]["isready"]:
        break
    time.sleep(0.1)
out["found"] = found
print(json.dumps(out))
