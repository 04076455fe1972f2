"Apps on the app layer (web/apps.py): each package declares what the model sees and may do. APP picks one."
