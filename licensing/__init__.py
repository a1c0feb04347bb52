"""Licences and rights to use: licence profiles (SPDX, text hash), agreements, the one policy function
(`licensing.policy.decide`) every download, deploy, swap, export and prediction asks, usage records and
the signed entitlements runners meter against. It sits just above marketplace: every app above imports
it; marketplace reaches it through the download gate it registers (marketplace.gates)."""
