"""The cities the service models: code, names and administering agency in English and Chinese.

Plain data without Django, so the demo loader and the benchmark's data generator share it.
"""

CITIES = [
    (
        "SH",
        "Shanghai",
        "上海",
        "Shanghai Municipal Commission of Economy and Informatization",
        "上海市经济和信息化委员会",
    ),
    (
        "HZ",
        "Hangzhou",
        "杭州",
        "Hangzhou Municipal Bureau of Economy and Information Technology",
        "杭州市经济和信息化局",
    ),
    (
        "SZ",
        "Shenzhen",
        "深圳",
        "Shenzhen Municipal Bureau of Industry and Information Technology",
        "深圳市工业和信息化局",
    ),
    (
        "BJ",
        "Beijing",
        "北京",
        "Beijing Municipal Bureau of Economy and Information Technology",
        "北京市经济和信息化局",
    ),
]

# The agencies' unified social credit codes (GB 32100-2015): "11" for an organ of government, the region, the
# organisation code with its own check digit, the check character. Made up for the demo, with correct check
# characters; a real deployment records each agency's own code in the admin. The 360Giving package names the funder
# CN-USCI-<code>.
AGENCY_CREDIT_CODES = {
    "SH": "11310000002423015G",
    "HZ": "11330100002504026C",
    "SZ": "114403000075510326",
    "BJ": "11110000000105048A",
}
